//! `Contents/Resources/moduleinfo.json` for a VST3 bundle.
//!
//! VST 3.7.5+ hosts read this file to learn a bundle's classes without loading it. nice-plug-xtask
//! does not write it, so we do: the bundle's own `.so` is loaded and its factory is asked, the same
//! source of truth the SDK's `moduleinfotool -create` uses, so the file cannot drift from the
//! binary. `tests/tests/plugin_moduleinfo.rs` re-reads the file and compares it with the factory.

use anyhow::{Context, Result, bail};
use serde_json::json;
use std::ffi::{c_char, c_void};
use std::path::{Path, PathBuf};
use vst3::ComPtr;
use vst3::Steinberg::{
    IPluginFactory, IPluginFactory2, IPluginFactory2Trait, IPluginFactory3, IPluginFactory3Trait,
    IPluginFactoryTrait, PClassInfo2, PClassInfoW, PFactoryInfo, PFactoryInfo_::FactoryFlags_,
    kResultOk,
};

fn cstr(bytes: &[c_char]) -> String {
    let bytes: Vec<u8> = bytes
        .iter()
        .map(|&c| c as u8)
        .take_while(|&c| c != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn wstr(chars: &[u16]) -> String {
    let end = chars.iter().position(|&c| c == 0).unwrap_or(chars.len());
    String::from_utf16_lossy(&chars[..end])
}

/// The `.so` inside a Linux VST3 bundle: `Contents/<arch>-linux/<bundle stem>.so`.
pub fn bundle_binary(bundle: &Path) -> Result<PathBuf> {
    let stem = bundle
        .file_stem()
        .context("the bundle path has no name")?
        .to_string_lossy()
        .into_owned();
    let arch = format!("{}-linux", std::env::consts::ARCH);
    let so = bundle
        .join("Contents")
        .join(arch)
        .join(format!("{stem}.so"));
    if !so.is_file() {
        bail!(
            "{} is not a VST3 bundle: {} is missing",
            bundle.display(),
            so.display()
        );
    }
    Ok(so)
}

/// Loads the bundle and describes its factory as the SDK's moduleinfo schema does.
pub fn describe(bundle: &Path) -> Result<serde_json::Value> {
    let so = bundle_binary(bundle)?;
    // The library is never unloaded: a Rust plugin keeps threads and thread-locals alive.
    let lib: &'static libloading::Library = Box::leak(Box::new(
        // SAFETY: loading a VST3 module runs its initialisers; that is what hosts do too.
        unsafe { libloading::Library::new(&so) }
            .with_context(|| format!("loading {}", so.display()))?,
    ));
    // SAFETY: the signatures are those of the VST3 Linux module ABI.
    let factory = unsafe {
        let entry: libloading::Symbol<unsafe extern "C" fn(*mut c_void) -> bool> = lib
            .get(b"ModuleEntry")
            .with_context(|| format!("{} exports no ModuleEntry", so.display()))?;
        if !entry(std::ptr::null_mut()) {
            bail!("{}: ModuleEntry failed", so.display());
        }
        let get: libloading::Symbol<unsafe extern "system" fn() -> *mut IPluginFactory> = lib
            .get(b"GetPluginFactory")
            .with_context(|| format!("{} exports no GetPluginFactory", so.display()))?;
        ComPtr::from_raw(get()).context("GetPluginFactory returned null")?
    };
    let f2 = factory
        .cast::<IPluginFactory2>()
        .context("the factory does not implement IPluginFactory2")?;
    let f3 = factory.cast::<IPluginFactory3>();

    // SAFETY: plain C structs filled by the factory; zero is a valid bit pattern for each.
    let mut info: PFactoryInfo = unsafe { std::mem::zeroed() };
    // SAFETY: the struct is ours and outlives the call; the factory is alive.
    if unsafe { factory.getFactoryInfo(&mut info) } != kResultOk {
        bail!("{}: getFactoryInfo failed", so.display());
    }
    let flags = info.flags as u32;
    let mut classes = Vec::new();
    // SAFETY: the factory is alive (we hold a reference to it).
    for i in 0..unsafe { factory.countClasses() } {
        // SAFETY: a plain C struct, for which all zeros is a valid value.
        let mut c2: PClassInfo2 = unsafe { std::mem::zeroed() };
        // SAFETY: the struct is ours and outlives the call; the factory is alive.
        if unsafe { f2.getClassInfo2(i, &mut c2) } != kResultOk {
            bail!("{}: getClassInfo2({i}) failed", so.display());
        }
        let (name, vendor, version, sdk) = match &f3 {
            Some(f3) => {
                // SAFETY: a plain C struct, for which all zeros is a valid value.
                let mut w: PClassInfoW = unsafe { std::mem::zeroed() };
                // SAFETY: the struct is ours and outlives the call; the factory is alive.
                if unsafe { f3.getClassInfoUnicode(i, &mut w) } != kResultOk {
                    bail!("{}: getClassInfoUnicode({i}) failed", so.display());
                }
                (
                    wstr(&w.name),
                    wstr(&w.vendor),
                    wstr(&w.version),
                    wstr(&w.sdkVersion),
                )
            }
            None => (
                cstr(&c2.name),
                cstr(&c2.vendor),
                cstr(&c2.version),
                cstr(&c2.sdkVersion),
            ),
        };
        let vendor = if vendor.is_empty() {
            cstr(&info.vendor)
        } else {
            vendor
        };
        // Linux: the CID is the 16 bytes as they are, upper-case hex (the SDK's UID::toString).
        let cid: String = c2.cid.iter().map(|&b| format!("{:02X}", b as u8)).collect();
        let subs: Vec<String> = cstr(&c2.subCategories)
            .split('|')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        classes.push(json!({
            "CID": cid,
            "Category": cstr(&c2.category),
            "Name": name,
            "Vendor": vendor,
            "Version": version,
            "SDKVersion": sdk,
            "Sub Categories": subs,
            "Class Flags": c2.classFlags,
            "Cardinality": c2.cardinality,
            "Snapshots": [],
        }));
    }
    let version = classes
        .first()
        .and_then(|c| c["Version"].as_str())
        .unwrap_or("")
        .to_string();
    Ok(json!({
        "Name": bundle.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
        "Version": version,
        "Factory Info": {
            "Vendor": cstr(&info.vendor),
            "URL": cstr(&info.url),
            "E-Mail": cstr(&info.email),
            "Flags": {
                "Unicode": flags & FactoryFlags_::kUnicode != 0,
                "Classes Discardable": flags & FactoryFlags_::kClassesDiscardable != 0,
                "Component Non Discardable": flags & FactoryFlags_::kComponentNonDiscardable != 0,
            },
        },
        "Classes": classes,
    }))
}

/// Writes `Contents/Resources/moduleinfo.json` (atomically: a temporary file renamed into place).
pub fn write(bundle: &Path) -> Result<PathBuf> {
    let value = describe(bundle)?;
    let dir = bundle.join("Contents").join("Resources");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("moduleinfo.json");
    let tmp = dir.join(".moduleinfo.json.tmp");
    let mut text = serde_json::to_string_pretty(&value)?;
    text.push('\n');
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

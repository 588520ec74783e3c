//! The VST3 bundle's `Contents/Resources/moduleinfo.json` (written by `cargo xtask bundle`) says
//! exactly what the bundle's factory says: hosts read the file instead of loading the module,
//! so a field that drifts from the binary misleads them. Every field is compared with
//! `getFactoryInfo`, `IPluginFactory2::getClassInfo2` and `IPluginFactory3::getClassInfoUnicode`,
//! and the identity fields with the plugin's fixed values.

mod common;

use common::ok;
use serde_json::Value;
use sluice_tests::bundles;
use sluice_tests::vst3_host::{Vst3Module, cid_hex};

fn moduleinfo() -> Value {
    let bundle = ok(bundles::vst3());
    let path = bundles::vst3_moduleinfo(&bundle);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (cargo xtask bundle writes it; run `cargo xtask bundle sluice-plugin`)",
            path.display()
        )
    });
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}\n{text}", path.display()))
}

#[track_caller]
fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("moduleinfo: {key:?} missing or not a string in {v}"))
}

#[test]
fn moduleinfo_matches_the_factory() {
    let info = moduleinfo();
    let module = ok(Vst3Module::load(&ok(bundles::vst3())));
    let factory = ok(module.factory_info());
    let classes = ok(module.classes());

    let known = [
        "Name",
        "Version",
        "Factory Info",
        "Compatibility",
        "Classes",
    ];
    for key in info
        .as_object()
        .expect("moduleinfo is a JSON object")
        .keys()
    {
        assert!(
            known.contains(&key.as_str()),
            "unknown top-level key {key:?}"
        );
    }
    assert_eq!(
        str_field(&info, "Name"),
        bundles::NAME,
        "Name is the bundle's name"
    );

    let fi = &info["Factory Info"];
    assert_eq!(
        str_field(fi, "Vendor"),
        factory.vendor,
        "Factory Info.Vendor"
    );
    assert_eq!(str_field(fi, "URL"), factory.url, "Factory Info.URL");
    assert_eq!(
        str_field(fi, "E-Mail"),
        factory.email,
        "Factory Info.E-Mail"
    );
    let flags = &fi["Flags"];
    assert_eq!(flags["Unicode"], factory.unicode(), "Flags.Unicode");
    assert_eq!(
        flags["Classes Discardable"],
        factory.classes_discardable(),
        "Flags.Classes Discardable"
    );
    assert_eq!(
        flags["Component Non Discardable"],
        factory.component_non_discardable(),
        "Flags.Component Non Discardable"
    );
    assert_eq!(factory.vendor, "Sluice");
    assert!(factory.unicode(), "nice-plug's factory is a Unicode one");

    let listed = info["Classes"].as_array().expect("Classes is an array");
    assert_eq!(listed.len(), classes.len(), "one entry per factory class");
    for (i, (m, f)) in listed.iter().zip(&classes).enumerate() {
        let info2 = f
            .info2
            .as_ref()
            .expect("the factory implements IPluginFactory2");
        let w = f
            .unicode
            .as_ref()
            .expect("the factory implements IPluginFactory3");
        let what = |field: &str| format!("Classes[{i}].{field}");

        let cid = str_field(m, "CID");
        assert_eq!(cid, cid_hex(&f.basic.cid), "{}", what("CID"));
        assert_eq!(cid.len(), 32, "{}", what("CID"));
        assert!(
            cid.chars()
                .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)),
            "{}: upper-case hex: {cid}",
            what("CID")
        );
        assert_eq!(
            str_field(m, "Category"),
            info2.category,
            "{}",
            what("Category")
        );
        assert_eq!(str_field(m, "Name"), w.name, "{}", what("Name"));
        assert_eq!(str_field(m, "Vendor"), w.vendor, "{}", what("Vendor"));
        assert_eq!(str_field(m, "Version"), w.version, "{}", what("Version"));
        assert_eq!(
            str_field(m, "SDKVersion"),
            w.sdk_version,
            "{}",
            what("SDKVersion")
        );
        let subs: Vec<&str> = m["Sub Categories"]
            .as_array()
            .unwrap_or_else(|| panic!("{} is not an array", what("Sub Categories")))
            .iter()
            .map(|s| s.as_str().expect("sub categories are strings"))
            .collect();
        let factory_subs: Vec<&str> = info2.sub_categories.split('|').collect();
        assert_eq!(subs, factory_subs, "{}", what("Sub Categories"));
        assert_eq!(
            m["Class Flags"],
            info2.class_flags,
            "{}",
            what("Class Flags")
        );
        assert_eq!(
            m["Cardinality"],
            info2.cardinality,
            "{}",
            what("Cardinality")
        );
        assert!(m["Snapshots"].is_array(), "{}", what("Snapshots"));

        // The three factory interfaces agree with one another.
        assert_eq!(f.basic.cid, info2.cid);
        assert_eq!(f.basic.cid, w.cid);
        assert_eq!(
            (f.basic.cardinality, &f.basic.category),
            (w.cardinality, &w.category)
        );
        assert_eq!((&f.basic.name, &info2.name), (&w.name, &w.name));
        assert_eq!((&info2.vendor, &info2.version), (&w.vendor, &w.version));
        assert_eq!(
            (&info2.sdk_version, info2.class_flags),
            (&w.sdk_version, w.class_flags)
        );
        assert_eq!(info2.sub_categories, w.sub_categories);
    }
    assert_eq!(
        str_field(&info, "Version"),
        classes
            .first()
            .and_then(|c| c.unicode.as_ref())
            .map_or("", |w| w.version.as_str()),
        "Version is the class version"
    );

    // The identity hosts remember: never changes.
    let c = &listed[0];
    assert_eq!(
        str_field(c, "CID"),
        cid_hex(&bundles::VST3_CLASS_ID),
        "the class id is b\"SluiceMeterPlug1\""
    );
    assert_eq!(str_field(c, "CID"), "536C756963654D65746572506C756731");
    assert_eq!(str_field(c, "Name"), bundles::NAME);
    assert_eq!(str_field(c, "Category"), "Audio Module Class");
    assert_eq!(str_field(c, "Version"), env!("CARGO_PKG_VERSION"));
    assert_eq!(
        c["Sub Categories"],
        serde_json::json!(["Fx", "Analyzer", "Tools"])
    );
    assert_eq!(c["Cardinality"], 0x7FFF_FFFF, "kManyInstances");
}

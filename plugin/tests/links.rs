//! The plugin records WAV and FLAC: it is built on the core without the `mp3`, `vorbis`,
//! `opus` and `aac` features, so neither LAME, libvorbis, the Opus encoder's Ogg writer nor
//! FDK AAC is linked into the bundle.

#[test]
fn the_plugin_links_neither_lame_nor_libvorbis() {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-p",
            "sluice-plugin",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--manifest-path",
            concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
        ])
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.contains("sluice-core"), "{tree}");
    assert!(tree.contains("symphonia"), "{tree}");
    for c in [
        "mp3lame-encoder",
        "mp3lame-sys",
        "vorbis_rs",
        "aotuv_lancer_vorbis_sys",
        "fdk-aac-sys",
        "ogg",
    ] {
        assert!(
            !tree.lines().any(|l| l.starts_with(&format!("{c} "))),
            "the plugin links {c}"
        );
    }
}

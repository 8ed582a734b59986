//! The Group Policy templates checked in under
//! `deploy/windows/PolicyDefinitions/` are exactly what the agent's policy
//! table generates, and every string and presentation they reference exists.
//! After changing the table: `TIERWISE_UPDATE_GOLDEN=1 cargo test -p
//! tierwise-agent --test policy_templates` rewrites them.

use std::path::PathBuf;
use tierwise_agent::policy::admx;

fn checked_in() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/windows/PolicyDefinitions")
}

#[test]
fn checked_in_templates_equal_the_generated_ones() {
    let (admx_text, adml_text) = admx::templates();
    let dir = checked_in();
    let files = [
        (dir.join("tierwise.admx"), admx_text),
        (dir.join("en-US").join("tierwise.adml"), adml_text),
    ];
    if std::env::var_os("TIERWISE_UPDATE_GOLDEN").is_some() {
        for (path, text) in &files {
            std::fs::create_dir_all(path.parent().expect("parent")).expect("create dir");
            std::fs::write(path, text).expect("write template");
        }
    }
    for (path, generated) in &files {
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        if on_disk != *generated {
            let first = on_disk
                .lines()
                .zip(generated.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(on_disk.lines().count().min(generated.lines().count()));
            panic!(
                "{} differs from the generated template from line {}:\n  checked in: {:?}\n  generated:  {:?}\nRun `TIERWISE_UPDATE_GOLDEN=1 cargo test -p tierwise-agent --test policy_templates` (or `tierwise-agent policy-templates deploy/windows/PolicyDefinitions`) and commit the result.",
                path.display(),
                first + 1,
                on_disk.lines().nth(first),
                generated.lines().nth(first)
            );
        }
    }
}

#[test]
fn checked_in_templates_resolve_every_reference() {
    let dir = checked_in();
    let admx_text = std::fs::read_to_string(dir.join("tierwise.admx")).expect("admx");
    let adml_text = std::fs::read_to_string(dir.join("en-US").join("tierwise.adml")).expect("adml");
    assert_eq!(
        admx::unresolved_references(&admx_text, &adml_text),
        Vec::<String>::new()
    );
    // Every policy writes under the policy key, never elsewhere.
    for line in admx_text.lines().filter(|l| l.contains(" key=\"")) {
        assert!(
            line.contains(r#"key="SOFTWARE\Policies\Tierwise\Agent"#),
            "{line}"
        );
    }
}

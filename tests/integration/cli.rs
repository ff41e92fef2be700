//! The `careledger` command line: demo, verify (also after tampering), plan, audit, actors.

use crate::common;

use std::process::{Command, Output};

fn careledger(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_careledger"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn demo_writes_every_event_kind_and_verify_accepts_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let demo = careledger(&["demo", "--data", data]);
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let text = stdout(&demo);
    for kind in careledger_api::wire::COMMAND_TYPES {
        assert!(text.contains(kind), "the demo records {kind}");
    }
    assert!(
        text.contains("gp-jansen") && text.contains("auditor-1"),
        "prints the demo actors"
    );
    let verify = careledger(&["verify", "--data", data]);
    assert!(verify.status.success());
    assert!(stdout(&verify).starts_with("ok: "), "{}", stdout(&verify));
    let plan = careledger(&["plan", "--data", data, "--patient", "999990007", "--json"]);
    assert!(plan.status.success());
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let ldl = plan["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["measure"] == "ldl")
        .unwrap();
    assert_eq!(ldl["target"]["value"], "1.8");
    assert_eq!(ldl["replaced"]["target"]["value"], "2.5");
    let audit = careledger(&[
        "audit",
        "--data",
        data,
        "--patient",
        "999990007",
        "--element",
        "medication:C10AA05",
        "--lang",
        "en",
    ]);
    assert!(
        stdout(&audit).contains("stopped atorvastatin 20 mg 1x daily (C10AA05): side effects"),
        "{}",
        stdout(&audit)
    );
}

#[test]
fn the_audit_trail_of_every_event_kind_reads_in_dutch_and_in_english_with_lang_en() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    assert!(careledger(&["demo", "--data", data]).status.success());
    let audit = |lang: &str| {
        let out = careledger(&[
            "audit",
            "--data",
            data,
            "--patient",
            "999990007",
            "--lang",
            lang,
        ]);
        assert!(out.status.success());
        stdout(&out)
    };
    let dutch = audit("nl");
    for text in [
        "deed labaanvraag lab-2026-01 (jaarcontrole CVRM)",
        "voegde creatinekinase (CK), ALAT, NT-proBNP toe aan het jaarlijkse CVRM-lab",
        "legde de rookstatus vast: ex-roker",
        "legde gewicht 81,2 kg vast (in de huisartspraktijk)",
        "legde systolische bloeddruk 142 mmHg vast (thuismeting)",
        "stopte atorvastatin 20 mg 1x daily (C10AA05): bijwerkingen",
        "voegde een terugrapportagebrief toe",
        "als foutief ingevoerd: ",
        "wijziging: ≤ 2,5 mmol/L -> ≤ 1,8 mmol/L",
    ] {
        assert!(dutch.contains(text), "{text:?} missing from:\n{dutch}");
    }
    // None of the English sentences of the events is left in the Dutch trail.
    for english in [
        "ordered lab",
        "recorded lab result",
        "to the care team",
        "set the ",
        "self-measured",
        "guideline default",
        "marked as entered in error",
        "acknowledged the notification",
        "added a return letter",
        "recorded smoking status",
        "81.2",
    ] {
        assert!(!dutch.contains(english), "{english:?} in:\n{dutch}");
    }
    let english = audit("en");
    assert!(
        english.contains("ordered lab lab-2026-01 (annual CVRM panel)"),
        "{english}"
    );
    assert!(
        english.contains("recorded weight 81.2 kg (at the practice)"),
        "{english}"
    );
    assert!(!english.contains("legde"), "{english}");
}

#[test]
fn verify_names_the_position_of_a_changed_byte_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    assert!(careledger(&["demo", "--data", data]).status.success());
    {
        let db = sled::open(dir.path().join("ledger")).unwrap();
        common::tamper::change(&db, 17, |frame| {
            let near_the_end = frame.len() - 5;
            frame[near_the_end] ^= 0x01;
        });
    }
    let verify = careledger(&["verify", "--data", data]);
    assert!(!verify.status.success());
    let text = stdout(&verify);
    assert!(text.contains("position 17"), "{text}");
    assert!(
        text.contains("hash mismatch") || text.contains("undecodable"),
        "{text}"
    );
}

#[test]
fn actors_add_prints_a_token_once_and_list_never_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let add = careledger(&[
        "actors", "add", "--data", data, "--id", "gp-9", "--name", "Dr. Nine", "--role", "gp",
    ]);
    assert!(add.status.success());
    let token = stdout(&add).trim().to_owned();
    assert_eq!(token.len(), 64);
    let list = careledger(&["actors", "list", "--data", data]);
    let listed = stdout(&list);
    assert!(listed.contains("gp-9") && !listed.contains(&token));
    let bad = careledger(&[
        "actors", "add", "--data", data, "--id", "x", "--name", "X", "--role", "wizard",
    ]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("auditor"),
        "names the accepted roles"
    );
}

#[test]
fn the_overdue_period_is_a_setting_of_the_read_models() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    assert!(careledger(&["demo", "--data", data]).status.success());
    let overdue = |extra: &[&str]| {
        let mut args = vec![
            "notifications",
            "--data",
            data,
            "--patient",
            "999990007",
            "--status",
            "overdue",
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = careledger(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        listed.as_array().unwrap().len()
    };
    // The demo's notifications were written just now: none is a week old.
    assert_eq!(overdue(&[]), 0);
    assert!(overdue(&["--overdue-after-days", "0"]) > 0);
    let refused = careledger(&[
        "notifications",
        "--data",
        data,
        "--patient",
        "999990007",
        "--overdue-after-days",
        "-3",
    ]);
    assert!(!refused.status.success());
}

#[test]
fn key_show_prints_the_log_key_and_serve_refuses_a_changed_origin() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let missing = careledger(&["key", "show", "--data", data]);
    assert!(!missing.status.success());
    let message = String::from_utf8_lossy(&missing.stderr);
    assert!(message.contains("no log key"), "{message}");

    let key = careledger_core::checkpoint::LogKey::open_or_create(
        &dir.path().join("log-key"),
        Some("hospital.example/careledger"),
    )
    .unwrap();
    let shown = careledger(&["key", "show", "--data", data]);
    assert!(shown.status.success());
    assert_eq!(stdout(&shown).trim(), key.verifier_key().to_string());

    let refused = careledger(&[
        "serve",
        "--data",
        data,
        "--addr",
        "127.0.0.1:0",
        "--origin",
        "other.example/log",
    ]);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("hospital.example/careledger") && message.contains("never changes"),
        "{message}"
    );
}

#[test]
fn proof_prints_inclusion_and_consistency_proofs_that_verify_and_names_a_bad_size() {
    use careledger_core::merkle::{verify_consistency, verify_inclusion, TreeHash};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    assert!(careledger(&["demo", "--data", data]).status.success());
    let json = |args: &[&str]| -> serde_json::Value {
        let out = careledger(args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let hash = |v: &serde_json::Value| TreeHash::from_hex(v.as_str().unwrap()).unwrap();
    let path = |v: &serde_json::Value| v.as_array().unwrap().iter().map(hash).collect::<Vec<_>>();

    let inclusion = json(&["proof", "inclusion", "--data", data, "--position", "3"]);
    let size = inclusion["tree_size"].as_u64().unwrap();
    assert!(size >= 3);
    assert_eq!(inclusion["leaf_index"], 2, "leaf index = position - 1");
    assert_eq!(
        verify_inclusion(
            &hash(&inclusion["leaf_hash"]),
            2,
            size,
            &path(&inclusion["path"]),
            &hash(&inclusion["root"])
        ),
        Ok(())
    );
    let consistency = json(&["proof", "consistency", "--data", data, "--first", "2"]);
    assert_eq!(consistency["second"], size);
    assert_eq!(
        verify_consistency(
            2,
            size,
            &hash(&consistency["first_root"]),
            &hash(&consistency["second_root"]),
            &path(&consistency["path"])
        ),
        Ok(())
    );
    assert_eq!(consistency["second_root"], inclusion["root"]);

    let beyond = (size + 1).to_string();
    let refused = careledger(&[
        "proof",
        "inclusion",
        "--data",
        data,
        "--position",
        "1",
        "--tree-size",
        &beyond,
    ]);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("exceeds the ledger's durable size"),
        "{message}"
    );
    let refused = careledger(&["proof", "consistency", "--data", data, "--first", "0"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("tree size 0"));
}

#[test]
fn a_reader_that_stops_early_ends_the_output_quietly_without_a_panic() {
    use std::io::Read as _;
    let dir = tempfile::tempdir().unwrap();
    // Audit trails longer than a pipe's buffer (64 KiB), so that the writer meets the closed pipe.
    common::built::build(dir.path(), 3_000);
    let data = dir.path().to_str().unwrap();
    for args in [
        vec!["audit", "--data", data, "--patient", "patient-1"],
        vec!["audit", "--data", data, "--patient", "patient-2", "--json"],
    ] {
        // As `careledger audit | head -c 10`: the reader takes a few bytes and closes the pipe.
        let mut child = Command::new(env!("CARGO_BIN_EXE_careledger"))
            .args(&args)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 10];
        child
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut first)
            .unwrap();
        drop(child.stdout.take());
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "{args:?}: {status}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_commands_read_through_a_running_server_with_url_and_print_as_from_the_directory()
{
    use common::process::{prepare_demo, text, ServerProcess};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (auditor, gp, _) = prepare_demo(dir.path());
    let patient = "999990007";
    let local = |args: &[&str]| {
        let out = careledger(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        stdout(&out)
    };
    let audit_here = local(&["audit", "--data", data, "--patient", patient]);
    let plan_here = local(&["plan", "--data", data, "--patient", patient, "--lang", "en"]);
    let client = reqwest::Client::new();
    let server = ServerProcess::start(dir.path(), &client).await;
    // The directory is held: the error says how to read through the server.
    let held = careledger(&["plan", "--data", data, "--patient", patient]);
    assert!(!held.status.success());
    assert!(text(&held).contains("--url"), "{}", text(&held));
    let remote = |args: &[&str], token: &str| {
        let mut all = args.to_vec();
        all.extend(["--url", &server.base, "--token", token]);
        let out = careledger(&all);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        stdout(&out)
    };
    assert_eq!(
        remote(&["audit", "--patient", patient], &gp),
        audit_here,
        "the same trail, the same text"
    );
    let plan_there = remote(&["plan", "--patient", patient, "--lang", "en"], &gp);
    let targets = |text: &str| {
        text.lines()
            .skip_while(|l| !l.starts_with("Targets"))
            .take_while(|l| !l.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(targets(&plan_there), targets(&plan_here));
    assert!(
        plan_there.contains("LDL cholesterol (LOINC 22748-8): ≤ 1.8 mmol/L"),
        "{plan_there}"
    );
    // People's words, never the code's: no enum names, no UCUM brackets, local times.
    for code_name in [
        "Cvrm",
        "OrganDisease",
        "SelfMeasuredAtHome",
        "mm[Hg]",
        "lead Main",
    ] {
        assert!(
            !plan_there.contains(code_name),
            "{code_name} in:\n{plan_there}"
        );
    }
    assert!(plan_there.contains("self-measured at home"), "{plan_there}");
    let dutch = remote(&["plan", "--patient", patient], &gp);
    assert!(dutch.contains("Zorgplan van patiënt"), "{dutch}");
    assert!(dutch.contains("regie CVRM, hoofdbehandelaar"), "{dutch}");
    assert!(dutch.contains("≤ 1,8 mmol/L"), "{dutch}");
    let told = remote(
        &["notifications", "--patient", patient, "--lang", "en"],
        &gp,
    );
    assert!(told.contains("to first line"), "{told}");
    let verified = remote(&["verify"], &auditor);
    assert!(verified.starts_with("ok: "), "{verified}");
    // A GP may not verify the whole chain: the server's refusal, in its words.
    let refused = careledger(&["verify", "--url", &server.base, "--token", &gp]);
    assert!(!refused.status.success());
    assert!(
        stdout(&refused).contains("auditors only"),
        "{}",
        stdout(&refused)
    );
    // --url without a token says which token is needed.
    let no_token = careledger(&["audit", "--patient", patient, "--url", &server.base]);
    assert!(!no_token.status.success());
    assert!(text(&no_token).contains("--token"), "{}", text(&no_token));
}

//! End-to-end tests of the `simclr` command on the embedded Fashion-MNIST sample: the main job,
//! reproducibility, interruption and exact resumption, and bad input.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn simclr() -> Command {
    Command::new(env!("CARGO_BIN_EXE_simclr"))
}

fn run(args: &[&str]) -> Output {
    simclr().args(args).output().expect("runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A small, fast pre-training on the embedded sample.
const SMALL: [&str; 8] = ["--dataset", "fashion-mnist-sample", "--limit", "256", "--batch-size", "32", "--seed", "3"];

fn pretrain(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["pretrain", "--run-dir", dir.to_str().unwrap()];
    args.extend_from_slice(&SMALL);
    args.extend_from_slice(extra);
    run(&args)
}

fn file(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
}

/// Metrics without wall-clock fields, for comparing runs.
fn metrics_without_timings(dir: &Path) -> Vec<serde_json::Value> {
    text(&file(dir, "metrics.jsonl"))
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            if let Some(o) = v.as_object_mut() {
                o.remove("seconds");
                o.remove("views_per_s");
                o.remove("monitor_seconds");
            }
            v
        })
        .collect()
}

/// Asserts a failed run: non-zero exit, one `error:` line naming `want`, no panic.
fn assert_clean_error(out: &Output, want: &str) {
    let err = text(&out.stderr);
    assert!(!out.status.success(), "expected failure, got success; stderr: {err}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "panic: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "one error line expected: {err}");
    assert!(lines[0].contains(want), "error should mention '{want}': {err}");
}

#[test]
fn main_job_pretrains_probes_and_writes_the_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let out = pretrain(&dir, &["--epochs", "2"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("LINEAR EVALUATION") && stdout.contains("Test Accuracy:"), "{stdout}");
    assert!(stdout.contains("epoch   2/2"), "{stdout}");
    for f in ["config.toml", "model.safetensors", "train_state.safetensors", "metrics.jsonl", "metrics.csv", "probe.json", "report.html"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    // The report embeds every picture, which are also saved as PNG files.
    let report = text(&file(&dir, "report.html"));
    assert_eq!(report.matches("src=\"data:image/png;base64,").count(), 6, "pictures missing from the report");
    assert!(!report.contains("Not drawn"), "a picture failed");
    for png in [
        "training-curves",
        "accuracy",
        "representation-geometry",
        "map-of-the-representation",
        "confusion-matrix-of-the-linear-probe",
        "augmentations",
    ] {
        assert!(file(&dir, &format!("plots/{png}.png")).starts_with(b"\x89PNG"), "{png}");
    }
    let probe: serde_json::Value = serde_json::from_slice(&file(&dir, "probe.json")).unwrap();
    let acc = probe["test_accuracy"].as_f64().unwrap();
    // Ten classes: a working encoder and probe are far above chance even on 256 images.
    assert!(acc > 0.5, "test accuracy {acc}");
    let epochs: Vec<serde_json::Value> = metrics_without_timings(&dir).into_iter().filter(|v| v["kind"] == "epoch").collect();
    assert_eq!(epochs.len(), 2);
    // The monitors are logged each epoch.
    for e in &epochs {
        for key in ["knn_accuracy", "alignment", "uniformity", "spread", "effective_rank", "mi_lower_bound"] {
            assert!(e[key].as_f64().is_some_and(f64::is_finite), "{key} missing in {e}");
        }
    }

    // The probe and embed subcommands work on the finished run.
    let z = run(&["probe", dir.to_str().unwrap(), "--features", "z"]);
    assert!(z.status.success() && text(&z.stdout).contains("LINEAR EVALUATION (z"), "{}", text(&z.stderr));
    let emb = tmp.path().join("emb");
    let e = run(&["embed", dir.to_str().unwrap(), "--out", emb.to_str().unwrap(), "--z"]);
    assert!(e.status.success(), "{}", text(&e.stderr));
    let h = std::fs::read(emb.join("h.npy")).unwrap();
    assert!(h.starts_with(b"\x93NUMPY") && text(&h[..128]).contains("(1000, 2304)"));
    assert!(emb.join("z.npy").is_file() && emb.join("labels.npy").is_file());

    // The baseline ladder beside the run's probe, saved and added to the report.
    let b = run(&["baselines", dir.to_str().unwrap(), "--supervised-epochs", "1"]);
    let table = text(&b.stdout);
    assert!(b.status.success(), "{table}\n{}", text(&b.stderr));
    for row in ["raw pixels", "random encoder", "supervised encoder", "SimCLR (this run)"] {
        assert!(table.contains(row), "{row} missing: {table}");
    }
    let ladder: serde_json::Value = serde_json::from_slice(&file(&dir, "baselines.json")).unwrap();
    let rows = ladder["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r["test_accuracy"].as_f64().is_some_and(|a| a > 0.3)), "{ladder}");
    assert_eq!(rows[0]["dim"], 784);
    assert!(text(&file(&dir, "report.html")).contains("<td>supervised encoder</td>"));

    // `--init` starts a new run from those weights; weights of another network are refused.
    let model = dir.join("model.safetensors");
    let init = pretrain(&tmp.path().join("init"), &["--epochs", "1", "--steps", "1", "--no-probe", "--init", model.to_str().unwrap()]);
    assert!(init.status.success(), "{}", text(&init.stderr));
    std::fs::write(tmp.path().join("wide.toml"), "[model]\nhead_widths = [64, 32]\n").unwrap();
    let wide = tmp.path().join("wide.toml");
    let mismatch =
        pretrain(&tmp.path().join("init2"), &["--config", wide.to_str().unwrap(), "--epochs", "1", "--init", model.to_str().unwrap()]);
    assert_clean_error(&mismatch, "different network");

    // `--steps 0` saves the untrained network, which probes as the random-encoder baseline.
    let zero = tmp.path().join("zero");
    assert!(pretrain(&zero, &["--steps", "0", "--no-probe"]).status.success());
    let random = run(&["probe", zero.to_str().unwrap()]);
    assert!(random.status.success() && text(&random.stdout).contains("Test Accuracy:"), "{}", text(&random.stderr));

    // A second run into the same directory is refused; nothing in it is touched.
    let before = file(&dir, "model.safetensors");
    let before_probe = file(&dir, "probe.json");
    assert_clean_error(&pretrain(&dir, &["--epochs", "2"]), "already holds a run");
    assert!(before == file(&dir, "model.safetensors"), "the refused run changed the checkpoint");
    assert!(before_probe == file(&dir, "probe.json"));
}

#[test]
fn same_seed_same_result_whatever_the_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    assert!(pretrain(&a, &["--epochs", "2", "--no-probe", "--steps", "6"]).status.success());
    let mut args = vec!["--threads", "1", "pretrain", "--run-dir", b.to_str().unwrap()];
    args.extend_from_slice(&SMALL);
    args.extend_from_slice(&["--epochs", "2", "--no-probe", "--steps", "6"]);
    assert!(run(&args).status.success());
    assert!(tensors(&a.join("model.safetensors")) == tensors(&b.join("model.safetensors")), "weights differ between 1 and 2 threads");
    assert_eq!(metrics_without_timings(&a), metrics_without_timings(&b));
}

fn wait_for(path: &Path, child: &mut Child, timeout: Duration) {
    let start = Instant::now();
    while !path.exists() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before {} appeared", path.display());
        assert!(start.elapsed() < timeout, "timed out waiting for {}", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A run long enough (96 steps) to be interrupted while it trains.
const LONGER: [&str; 11] =
    ["--dataset", "fashion-mnist-sample", "--limit", "2048", "--batch-size", "64", "--seed", "5", "--epochs", "3", "--no-probe"];

fn spawn_pretrain(dir: &Path) -> Child {
    simclr()
        .args(["pretrain", "--run-dir", dir.to_str().unwrap()])
        .args(LONGER)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The tensors of a safetensors file by name (metadata order may differ between files).
fn tensors(path: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors().into_iter().map(|(k, v)| (k, v.data().to_vec())).collect()
}

#[test]
fn killed_or_interrupted_runs_resume_bit_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let straight: PathBuf = tmp.path().join("straight");
    let mut args = vec!["pretrain", "--run-dir", straight.to_str().unwrap()];
    args.extend_from_slice(&LONGER);
    assert!(run(&args).status.success());

    // kill -9 after the first checkpoint, then resume.
    let killed = tmp.path().join("killed");
    let mut child = spawn_pretrain(&killed);
    wait_for(&killed.join("model.safetensors"), &mut child, Duration::from_secs(120));
    child.kill().unwrap();
    child.wait().unwrap();
    // The report of the unfinished run shows what was recorded.
    let report = run(&["report", killed.to_str().unwrap()]);
    assert!(report.status.success(), "{}", text(&report.stderr));
    assert!(text(&file(&killed, "report.html")).contains("not finished"));
    let resumed = run(&["pretrain", "--run-dir", killed.to_str().unwrap(), "--resume", "--no-probe"]);
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));

    // SIGINT (Ctrl-C) and SIGTERM: checkpoint, advice, exit code 130; then resume.
    let mut stopped = Vec::new();
    for signal in ["INT", "TERM"] {
        let dir = tmp.path().join(signal);
        let mut child = spawn_pretrain(&dir);
        wait_for(&dir.join("metrics.jsonl"), &mut child, Duration::from_secs(120));
        Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().unwrap();
        let out = child.wait_with_output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "SIG{signal}: {err}");
        assert!(err.contains("--resume"), "{err}");
        let resumed = run(&["pretrain", "--run-dir", dir.to_str().unwrap(), "--resume", "--no-probe"]);
        assert!(resumed.status.success(), "{}", text(&resumed.stderr));
        stopped.push(dir);
    }

    for other in std::iter::once(&killed).chain(&stopped) {
        for f in ["model.safetensors", "train_state.safetensors"] {
            assert!(tensors(&straight.join(f)) == tensors(&other.join(f)), "{f} differs: {}", other.display());
        }
        assert_eq!(metrics_without_timings(&straight), metrics_without_timings(other));
    }
}

#[test]
fn bad_input_gives_one_clear_error_line() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |name: &str| tmp.path().join(name);
    let s = |path: &PathBuf| path.to_str().unwrap().to_string();

    assert_clean_error(&run(&["pretrain", "--config", "/nonexistent/run.toml"]), "/nonexistent/run.toml");
    std::fs::write(p("unknown.toml"), "[train]\nlearning_rate = 0.1\n").unwrap();
    assert_clean_error(&run(&["pretrain", "--config", &s(&p("unknown.toml"))]), "learning_rate");
    std::fs::write(p("type.toml"), "[train]\nepochs = \"ten\"\n").unwrap();
    assert_clean_error(&run(&["pretrain", "--config", &s(&p("type.toml"))]), "epochs");
    assert_clean_error(&run(&["pretrain", "--dataset", "fashion-mnist-sample", "--lr", "0"]), "train.lr");
    assert_clean_error(&run(&["pretrain", "--dataset", "fashion-mnist-sample", "--temperature=-1"]), "train.temperature");
    std::fs::write(p("crop.toml"), "[augment]\ncrop_scale = [0.0, 1.0]\n").unwrap();
    assert_clean_error(&run(&["pretrain", "--config", &s(&p("crop.toml"))]), "augment.crop_scale");
    let big = run(&["pretrain", "--run-dir", &s(&p("big")), "--dataset", "fashion-mnist-sample", "--limit", "100", "--batch-size", "256"]);
    assert_clean_error(&big, "larger than the dataset");

    // Corrupt and truncated IDX files in a data folder.
    let data = p("idx");
    std::fs::create_dir(&data).unwrap();
    for f in ["train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"] {
        std::fs::write(data.join(f), [0, 0, 8, 1, 0, 0, 0, 0]).unwrap();
    }
    std::fs::write(data.join("train-images-idx3-ubyte"), [0, 0, 8, 3, 0, 0, 0, 9, 0, 0, 0, 28, 0, 0, 0, 28, 1, 2]).unwrap();
    assert_clean_error(&run(&["pretrain", "--dataset", "mnist", "--data-dir", &s(&data)]), "truncated");
    std::fs::write(data.join("train-images-idx3-ubyte"), [0x1f, 0x8b, 8, 0, 1, 2, 3]).unwrap();
    assert_clean_error(&run(&["pretrain", "--dataset", "mnist", "--data-dir", &s(&data)]), "gzip");
    let empty = p("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_clean_error(&run(&["pretrain", "--dataset", "folder", "--data-dir", &s(&empty)]), "no PNG or JPEG");

    // A diverging run stops with the step and the likely cause; an unwritable run directory.
    let nan = run(&[
        "pretrain",
        "--run-dir",
        &s(&p("nan")),
        "--dataset",
        "fashion-mnist-sample",
        "--limit",
        "256",
        "--batch-size",
        "32",
        "--lr",
        "1e30",
    ]);
    assert_clean_error(&nan, "learning rate");
    assert!(text(&nan.stderr).contains("step "), "{}", text(&nan.stderr));
    assert_clean_error(&run(&["pretrain", "--run-dir", "/dev/null/run", "--dataset", "fashion-mnist-sample"]), "/dev/null/run");

    // A truncated checkpoint.
    let run_dir = p("trunc");
    std::fs::create_dir(&run_dir).unwrap();
    std::fs::write(run_dir.join("config.toml"), "seed = 0\n[data]\ndataset = \"fashion-mnist-sample\"\n").unwrap();
    std::fs::write(run_dir.join("model.safetensors"), b"\x10\x00\x00").unwrap();
    assert_clean_error(&run(&["probe", &s(&run_dir)]), "model.safetensors");
    assert_clean_error(&run(&["report", &s(&p("no-run"))]), "no-run");
    assert_clean_error(&run(&["baselines", &s(&p("no-run"))]), "no-run");
}

#[test]
fn augment_writes_a_png_grid() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("grid.png");
    let r = run(&[
        "augment",
        "--dataset",
        "fashion-mnist-sample",
        "--out",
        out.to_str().unwrap(),
        "--images",
        "3",
        "--views",
        "4",
        "--zoom",
        "2",
    ]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    let img = image::open(&out).unwrap();
    // 5 columns and 3 rows of 48-pixel tiles (24 pixels zoomed twice) with 4-pixel gutters.
    assert_eq!((img.width(), img.height()), (5 * 52 + 4, 3 * 52 + 4));
}

/// Unmounts a filesystem when dropped.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_while_saving_keeps_the_last_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = tmp.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    // 16 MiB: room for the first checkpoint (about 13 MB), not for the next one beside it.
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"]).arg(&disk).output().unwrap();
    if !mounted.status.success() {
        eprintln!("skipped: cannot mount a small tmpfs here ({})", text(&mounted.stderr).trim());
        return;
    }
    let _guard = Mount(disk.clone());
    let dir = disk.join("run");
    let out = pretrain(&dir, &["--epochs", "3", "--no-probe"]);
    assert_clean_error(&out, "No space left");
    let names: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "temporary files left behind: {names:?}");

    // The first epoch's checkpoint is intact: copied to a disk with room, the run resumes and
    // ends as an uninterrupted run does.
    let copy = tmp.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    for n in &names {
        std::fs::copy(dir.join(n), copy.join(n)).unwrap();
    }
    let resumed = run(&["pretrain", "--run-dir", copy.to_str().unwrap(), "--resume", "--no-probe"]);
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));
    let straight = tmp.path().join("straight");
    assert!(pretrain(&straight, &["--epochs", "3", "--no-probe"]).status.success());
    assert!(tensors(&straight.join("model.safetensors")) == tensors(&copy.join("model.safetensors")));
}

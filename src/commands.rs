//! What each subcommand does, on top of the library.

use crate::bench::{self, BenchConfig};
use crate::checkpoint::load_net;
use crate::cli::{AugmentArgs, BaselinesArgs, BenchArgs, ConfigArgs, EmbedArgs, PretrainArgs, ProbeArgs, ReportArgs};
use crate::config::RunConfig;
use crate::data::source::{self, DatasetName, Fallbacks, Splits};
use crate::data::Dataset;
use crate::eval::features::{encode, Features};
use crate::eval::probe::{confusion, linear_probe, ProbeResult, ProbeSettings};
use crate::eval::supervised::{classifier_accuracy, train_supervised};
use crate::io::{write_atomic, write_npy_f32, write_npy_i64};
use crate::model::net::Net;
use crate::nn::param::TorchLayout;
use crate::report::augment_grid::augment_grid;
use crate::report::figures::class_names;
use crate::report::records::read_json;
use crate::report::write_report;
use crate::train::metrics::MetricsWriter;
use crate::train::pretrain::{pretrain, PretrainOptions};
use crate::train::run_dir::{Existing, RunDir};
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The configuration from `--config` (or defaults) with command-line overrides applied.
pub fn resolve_config(a: &ConfigArgs) -> Result<RunConfig> {
    let mut cfg = match &a.config {
        Some(p) => RunConfig::load(p)?,
        None => RunConfig::default(),
    };
    if let Some(d) = &a.dataset {
        cfg.data.dataset = d.clone();
        // Without a config file, CIFAR-10 gets the paper's RGB augmentation at its own size.
        if matches!(d, DatasetName::Cifar10) && a.config.is_none() {
            cfg.augment = crate::augment::Preset::Simclr.config(32);
        }
    }
    if let Some(p) = &a.data_dir {
        cfg.data.path = Some(p.clone());
    }
    if let Some(v) = a.limit {
        cfg.data.limit = v;
    }
    if a.offline {
        cfg.data.download = false;
    }
    if let Some(v) = a.epochs {
        cfg.train.epochs = v;
    }
    if let Some(v) = a.batch_size {
        cfg.train.batch_size = v;
    }
    if let Some(v) = a.lr {
        cfg.train.lr = v;
    }
    if let Some(v) = a.temperature {
        cfg.train.temperature = v;
    }
    if let Some(v) = a.seed {
        cfg.seed = v;
    }
    cfg.validate()?;
    Ok(cfg)
}

/// Loads the configured dataset; Fashion-MNIST falls back to the embedded sample, loudly.
pub fn load_data(cfg: &RunConfig) -> Result<Splits> {
    let d = &cfg.data;
    let fallbacks = Fallbacks { download: d.download, sample: true };
    let mut splits = source::load(&d.dataset, d.path.as_deref(), d.folder_size, d.channels, fallbacks)?;
    if splits.origin.starts_with("the embedded") && d.dataset == DatasetName::FashionMnist {
        eprintln!(
            "note: Fashion-MNIST was not found or downloaded (install it with `apt-get install dataset-fashion-mnist`); \
             falling back to {}, so accuracies are not comparable with full-dataset runs",
            splits.origin
        );
    }
    if d.limit > 0 {
        splits.train = splits.train.take(d.limit);
    }
    Ok(splits)
}

fn default_run_dir(cfg: &RunConfig) -> PathBuf {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86400, secs % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let name = serde_json::to_value(&cfg.data.dataset).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_else(|| "run".into());
    PathBuf::from("runs").join(format!("{name}-{year:04}{month:02}{day:02}-{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60))
}

/// `simclr pretrain`: pre-train, then probe, then write the report.
pub fn pretrain_cmd(a: &PretrainArgs, stop: &AtomicBool) -> Result<bool> {
    let (cfg, run_dir) = match (&a.run_dir, a.resume) {
        (Some(dir), true) => {
            let cfg = RunConfig::load(&RunDir { root: dir.clone() }.config())?;
            (cfg, dir.clone())
        }
        _ => {
            let cfg = resolve_config(&a.config)?;
            let dir = a.run_dir.clone().unwrap_or_else(|| default_run_dir(&cfg));
            (cfg, dir)
        }
    };
    let splits = load_data(&cfg)?;
    println!("data: {} training images from {}", splits.train.len(), splits.origin);
    println!("run directory: {}", run_dir.display());
    let existing = if a.resume {
        Existing::Resume
    } else if a.overwrite {
        Existing::Overwrite
    } else {
        Existing::Refuse
    };
    let opts = PretrainOptions {
        run_dir: run_dir.clone(),
        existing,
        init: a.init.clone(),
        max_steps: a.steps,
        progress: std::io::stderr().is_terminal(),
    };
    let out = pretrain(&cfg, &splits.train, splits.test.as_ref(), &opts, stop)?;
    let dir = RunDir { root: run_dir.clone() };
    if out.interrupted {
        eprintln!(
            "interrupted at step {}: checkpoint saved in {}; continue with: simclr pretrain --run-dir {} --resume",
            out.steps,
            run_dir.display(),
            run_dir.display()
        );
        redraw_report(&dir, Some(&splits), false)?;
        return Ok(false);
    }
    if !out.epoch_seconds.is_empty() {
        let mean = out.epoch_seconds.iter().sum::<f64>() / out.epoch_seconds.len() as f64;
        println!("pre-training done: {} steps, {mean:.1} s per epoch", out.steps);
    }
    if !a.no_probe {
        probe_run(&run_dir, &cfg, &splits, Features::H)?;
    }
    redraw_report(&dir, Some(&splits), true)?;
    Ok(true)
}

fn labels(ds: &Dataset, what: &str) -> Result<Vec<u16>> {
    ds.labels.clone().with_context(|| format!("the {what} images have no labels, which the linear probe needs"))
}

/// Encodes both splits with `net` (nothing to encode for pixels) and runs the linear probe;
/// returns its result as a record with the feature size, the time taken and the confusion matrix.
fn probe_features(net: &mut Net<f32>, cfg: &RunConfig, splits: &Splits, which: Features) -> Result<(ProbeResult, serde_json::Value)> {
    let started = Instant::now();
    let test = splits.test.as_ref().context("the dataset has no test split; the linear probe needs one")?;
    let (ty, ey) = (labels(&splits.train, "training")?, labels(test, "test")?);
    let train_x = encode(net, &cfg.augment, &splits.train, which)?;
    let test_x = encode(net, &cfg.augment, test, which)?;
    let settings = ProbeSettings {
        validation_fraction: cfg.probe.validation_fraction,
        weight_decays: cfg.probe.weight_decays.clone(),
        epochs: cfg.probe.epochs,
        seed: cfg.seed,
    };
    let r = linear_probe(&train_x, &ty, &test_x, &ey, &settings)?;
    let classes = splits.train.num_classes().into_iter().chain(test.num_classes()).max().unwrap_or(1);
    let record = json!({
        "kind": "probe", "features": which.name(), "dim": train_x.rows_cols().1,
        "train_accuracy": r.train_accuracy, "test_accuracy": r.test_accuracy, "weight_decay": r.weight_decay,
        "validation": r.validation_accuracy, "seconds": started.elapsed().as_secs_f64(),
        "confusion": confusion(&r.test_predictions, &ey, classes), "class_names": class_names(test, classes),
    });
    Ok((r, record))
}

/// Runs the linear probe on the run's model; prints it and records it (probe.json or
/// probe_<features>.json, and metrics.jsonl).
pub fn probe_run(run_dir: &Path, cfg: &RunConfig, splits: &Splits, which: Features) -> Result<ProbeResult> {
    let dir = RunDir { root: run_dir.to_path_buf() };
    let mut net = load_net(&dir.model())?;
    let (r, record) = probe_features(&mut net, cfg, splits, which)?;
    let name = which.name();
    println!("LINEAR EVALUATION ({name}, {}-d features, weight decay {:e})", record["dim"], r.weight_decay);
    println!("Train Accuracy: {:.2}%", 100.0 * r.train_accuracy);
    println!("Test Accuracy: {:.2}%", 100.0 * r.test_accuracy);
    let probe_file = if which == Features::H { dir.probe() } else { dir.probe_of(name) };
    write_atomic(&probe_file, serde_json::to_string_pretty(&record)?.as_bytes())?;
    MetricsWriter::open(&dir.metrics(), None)?.write(&record)?;
    Ok(r)
}

/// `simclr probe`.
pub fn probe_cmd(a: &ProbeArgs) -> Result<()> {
    let dir = RunDir { root: a.run_dir.clone() };
    let cfg = RunConfig::load(&dir.config())?;
    let splits = load_data(&cfg)?;
    probe_run(&a.run_dir, &cfg, &splits, a.features)?;
    redraw_report(&dir, Some(&splits), true)?;
    Ok(())
}

/// `simclr baselines`: the linear probe on raw pixels, on the run's encoder as initialised, and on
/// the same encoder trained with labels, beside the run's own probe; saved as baselines.json.
pub fn baselines_cmd(a: &BaselinesArgs) -> Result<()> {
    let dir = RunDir { root: a.run_dir.clone() };
    let cfg = RunConfig::load(&dir.config())?;
    let splits = load_data(&cfg)?;
    let test = splits.test.as_ref().context("the dataset has no test split; the baselines need one")?;
    labels(&splits.train, "training")?;
    let mut rows = Vec::new();
    let mut untrained = Net::<f32>::new(&cfg.net_spec(splits.train.channels), cfg.seed)?;
    println!("baseline 1/3: linear probe on raw pixels");
    let (_, mut pixels) = probe_features(&mut untrained, &cfg, &splits, Features::Pixels)?;
    pixels["name"] = json!("raw pixels");
    pixels["note"] = json!("the image itself, scaled to [0, 1]");
    rows.push(pixels);
    println!("baseline 2/3: linear probe on the untrained encoder (the run's initial weights)");
    let (_, mut random) = probe_features(&mut untrained, &cfg, &splits, Features::H)?;
    random["name"] = json!("random encoder");
    random["note"] = json!("the encoder as initialised, never trained");
    rows.push(random);
    if a.supervised_epochs > 0 {
        println!("baseline 3/3: the encoder trained end to end with labels for {} epochs", a.supervised_epochs);
        let mut net = train_supervised(&cfg, &splits.train, a.supervised_epochs)?;
        let own = classifier_accuracy(&mut net, &cfg, test)?;
        let (_, mut supervised) = probe_features(&mut net, &cfg, &splits, Features::H)?;
        supervised["name"] = json!("supervised encoder");
        supervised["note"] = json!(format!(
            "trained with labels for {} epochs on the same views; its own classifier: {:.2}% test",
            a.supervised_epochs,
            100.0 * own
        ));
        supervised["epochs"] = json!(a.supervised_epochs);
        supervised["classifier_test_accuracy"] = json!(own);
        rows.push(supervised);
    }
    let simclr = read_json(&dir.probe())?;
    println!("\n{:<22} {:>7} {:>9} {:>9}", "linear probe on", "dim", "train", "test");
    let line = |name: &str, r: &serde_json::Value| {
        let pct = |k: &str| r[k].as_f64().map_or_else(|| "-".into(), |v| format!("{:.2}%", 100.0 * v));
        println!("{name:<22} {:>7} {:>9} {:>9}", r["dim"].to_string(), pct("train_accuracy"), pct("test_accuracy"));
    };
    for r in &rows {
        line(r["name"].as_str().unwrap_or("?"), r);
    }
    match &simclr {
        Some(p) => line("SimCLR (this run)", p),
        None => println!("SimCLR (this run): not probed yet (simclr probe {})", a.run_dir.display()),
    }
    let record = json!({"kind": "baselines", "rows": rows, "simclr_test_accuracy": simclr.as_ref().map(|p| p["test_accuracy"].clone())});
    write_atomic(&dir.baselines(), serde_json::to_string_pretty(&record)?.as_bytes())?;
    println!("saved {}", dir.baselines().display());
    redraw_report(&dir, Some(&splits), true)?;
    Ok(())
}

/// `simclr report`: redraws the plots and report.html of a run, finished or not.
pub fn report_cmd(a: &ReportArgs) -> Result<()> {
    let dir = RunDir { root: a.run_dir.clone() };
    let cfg = RunConfig::load(&dir.config())?;
    let splits = match load_data(&cfg) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("note: the run's dataset cannot be loaded ({e:#}); the report leaves out the map and the augmentation grid");
            None
        }
    };
    redraw_report(&dir, splits.as_ref(), true)
}

/// Writes the run's report (with the 2-D map or not) and says where it is.
fn redraw_report(dir: &RunDir, splits: Option<&Splits>, map: bool) -> Result<()> {
    write_report(dir, splits, map)?;
    println!("report: {}", dir.report().display());
    Ok(())
}

/// `simclr embed`.
pub fn embed_cmd(a: &EmbedArgs) -> Result<()> {
    let dir = RunDir { root: a.run_dir.clone() };
    let cfg = RunConfig::load(&dir.config())?;
    let splits = load_data(&cfg)?;
    let ds = if a.split == "train" { &splits.train } else { splits.test.as_ref().context("the dataset has no test split")? };
    let mut net = load_net(&dir.model())?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    let [fh, fw, fc] = net.encoder.feature_map_shape();
    let kinds: &[(Features, &str)] = if a.z { &[(Features::H, "h.npy"), (Features::Z, "z.npy")] } else { &[(Features::H, "h.npy")] };
    for &(which, name) in kinds {
        let x = encode(&mut net, &cfg.augment, ds, which)?;
        let values: Vec<f32> = if which == Features::H {
            // h in PyTorch's channel-major flatten order, as `encoder(x)` of python/simclr_torch.py.
            let order = TorchLayout::LinearFromNhwc { out: ds.len(), h: fh, w: fw, c: fc }.torch_to_engine();
            order.iter().map(|&i| x.data()[i]).collect()
        } else {
            x.data().to_vec()
        };
        write_npy_f32(&a.out.join(name), x.shape(), &values)?;
    }
    if let Some(l) = &ds.labels {
        let l: Vec<i64> = l.iter().map(|&v| v as i64).collect();
        write_npy_i64(&a.out.join("labels.npy"), &[l.len()], &l)?;
    }
    println!("wrote {} {} embeddings to {}", ds.len(), a.split, a.out.display());
    Ok(())
}

/// `simclr augment`: a grid, one row per image: the evaluation view, then random views.
pub fn augment_cmd(a: &AugmentArgs) -> Result<()> {
    if a.images == 0 || a.views == 0 || a.zoom == 0 || a.zoom > 32 {
        bail!("--images and --views must be at least 1, --zoom between 1 and 32");
    }
    let cfg = resolve_config(&a.config)?;
    let splits = load_data(&cfg)?;
    let ds = splits.train.take(a.images);
    write_atomic(&a.out, &augment_grid(&cfg.augment, &ds, cfg.seed, a.views, a.zoom)?)?;
    println!("wrote {} ({} images x {} views, first column: evaluation view)", a.out.display(), ds.len(), a.views);
    Ok(())
}

/// `simclr bench`.
pub fn bench_cmd(a: &BenchArgs) -> Result<()> {
    if a.batch < 1 || a.steps < 1 {
        bail!("--batch and --steps must be at least 1");
    }
    let r = bench::run(&BenchConfig { batch: a.batch, size: a.size, warmup: 3, steps: a.steps, infer_batch: 1024 })?;
    if !a.json {
        println!(
            "reference step: tutorial encoder + head, {} views of {}x{}, NT-Xent, backward, Adam; {} threads",
            2 * a.batch,
            a.size,
            a.size,
            r.threads
        );
        println!("train: {:.0} views/s ({:.1} ms/step, median of {})", r.train_views_per_s, r.step_ms_median, a.steps);
        println!("inference (eval mode, batch 1024): {:.0} images/s", r.infer_images_per_s);
        println!(
            "augmentation: {:.1} ms per batch of {} views ({:.1}% of a step; pre-training overlaps it on its own thread)",
            r.augment_ms,
            2 * a.batch,
            100.0 * r.augment_ms / r.step_ms_median
        );
        println!("per layer (ms per step):");
        for (name, ms) in &r.layers_ms {
            println!("  {name:<28} {ms:>8.2}");
        }
    }
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}

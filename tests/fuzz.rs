//! A bounded, deterministic fuzz harness for the readers of untrusted files: IDX, gzip, CIFAR-10
//! and checkpoints. Each starts from the seed files in `fuzz/corpus/<reader>/` (and, for
//! checkpoints, a freshly written one), applies random mutations (bit flips, truncation,
//! insertion, overwritten header fields) and requires an `Ok` or a clean `Err`, never a panic.
//! New seeds, such as inputs that once crashed a reader, go into the corpus folders.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use simclr::checkpoint::{load_model_bytes, save_model};
use simclr::data::cifar::parse_cifar10;
use simclr::data::idx::{maybe_gunzip, parse_idx};
use simclr::model::encoder::Architecture;
use simclr::model::net::{Net, NetSpec};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// Mutated inputs tried per seed file.
const ROUNDS: usize = 2000;

fn corpus(reader: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(reader);
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(!seeds.is_empty(), "empty corpus {}", dir.display());
    seeds
}

/// A position in `0..len`, half the time within the first 512 bytes, where headers live.
fn position(len: usize, rng: &mut ChaCha8Rng) -> usize {
    let span = if rng.random_bool(0.5) { len.min(512) } else { len };
    rng.random_range(0..span)
}

fn mutate(seed: &[u8], rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..rng.random_range(1..4) {
        match rng.random_range(0..5) {
            0 if !b.is_empty() => {
                let i = position(b.len(), rng);
                b[i] ^= 1 << rng.random_range(0..8);
            }
            1 => b.truncate(rng.random_range(0..=b.len())),
            2 => {
                let i = rng.random_range(0..=b.len());
                let extra: Vec<u8> = (0..rng.random_range(1..16)).map(|_| rng.random()).collect();
                b.splice(i..i, extra);
            }
            3 if b.len() >= 4 => {
                // Overwrite a 4-byte field near the start (sizes, counts, header lengths).
                let i = rng.random_range(0..b.len().min(32) - 3);
                b[i..i + 4].copy_from_slice(&rng.random::<u32>().to_le_bytes());
            }
            _ if !b.is_empty() => {
                let i = position(b.len(), rng);
                b[i] = rng.random();
            }
            _ => {}
        }
    }
    b
}

/// Runs `reader` on every seed and its mutations; fails on the first panic, naming the input.
fn fuzz(name: &str, seeds: &[Vec<u8>], mut reader: impl FnMut(&[u8])) {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
    for seed in seeds {
        let mut inputs = vec![seed.clone()];
        inputs.extend((0..ROUNDS).map(|_| mutate(seed, &mut rng)));
        for input in inputs {
            let ok = catch_unwind(AssertUnwindSafe(|| reader(&input))).is_ok();
            assert!(ok, "{name} reader panicked on input (first 64 bytes): {:?}", &input[..input.len().min(64)]);
        }
    }
}

#[test]
fn idx_parser_never_panics() {
    fuzz("IDX", &corpus("idx"), |b| {
        let _ = parse_idx(b, "fuzz");
    });
}

#[test]
fn gzip_then_idx_never_panics() {
    fuzz("gzip", &corpus("gzip"), |b| {
        if let Ok(raw) = maybe_gunzip(b.to_vec(), "fuzz") {
            let _ = parse_idx(&raw, "fuzz");
        }
    });
}

#[test]
fn cifar_parser_never_panics() {
    fuzz("CIFAR-10", &corpus("cifar"), |b| {
        let _ = parse_cifar10(b, "fuzz");
    });
}

#[test]
fn checkpoint_loader_never_panics() {
    let spec = NetSpec { architecture: Architecture::Tutorial, channels: 1, size: 4, head_widths: vec![4, 2], head_batch_norm: true };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let mut net = Net::<f32>::new(&spec, 1).unwrap();
    save_model(&mut net, &path, &[]).unwrap();
    let seeds = vec![std::fs::read(&path).unwrap()];
    fuzz("checkpoint", &seeds, |b| {
        let _ = load_model_bytes(&mut net, b, "fuzz.safetensors");
    });
}

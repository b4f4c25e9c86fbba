//! Checkpoints in safetensors.
//!
//! `model.safetensors` holds the network under PyTorch state-dict names and layouts (conv weight
//! `[out, in, kh, kw]`, linear weight `[out, in]`, the first head layer's input in NCHW flatten
//! order, batch-norm buffers with `num_batches_tracked` as int64), so that the modules in
//! `python/simclr_torch.py` load it with `load_state_dict(strict=True)`; its metadata holds the
//! network spec, so a checkpoint alone rebuilds the network. `train_state.safetensors` holds, in
//! one atomically written file, everything exact resumption needs: the same network tensors, the
//! optimizer's moments and the training position.

use crate::io::write_atomic;
use crate::model::net::{Net, NetSpec};
use crate::nn::param::HasParams;
use crate::optim::Optimizer;
use anyhow::{bail, Context, Result};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Metadata key holding the network spec as JSON.
const SPEC_KEY: &str = "simclr.net";

/// A tensor ready to serialise: dtype, shape and little-endian bytes.
struct Raw {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn serialize(tensors: &BTreeMap<String, Raw>, metadata: HashMap<String, String>) -> Result<Vec<u8>> {
    let views = tensors
        .iter()
        .map(|(k, r)| Ok((k.clone(), TensorView::new(r.dtype, r.shape.clone(), &r.bytes)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    Ok(safetensors::serialize(views, Some(metadata))?)
}

/// The network's PyTorch state dict.
fn state_dict(net: &mut Net<f32>) -> BTreeMap<String, Raw> {
    let mut out = BTreeMap::new();
    net.visit_params(&mut |p| {
        let values: Vec<f32> = p.layout.torch_to_engine().iter().map(|&i| p.value[i]).collect();
        out.insert(p.name.clone(), Raw { dtype: Dtype::F32, shape: p.layout.shape(), bytes: f32_bytes(&values) });
    });
    net.visit_batchnorms(&mut |bn| {
        let c = bn.channels();
        out.insert(format!("{}.running_mean", bn.prefix), Raw { dtype: Dtype::F32, shape: vec![c], bytes: f32_bytes(&bn.running_mean) });
        out.insert(format!("{}.running_var", bn.prefix), Raw { dtype: Dtype::F32, shape: vec![c], bytes: f32_bytes(&bn.running_var) });
        out.insert(
            format!("{}.num_batches_tracked", bn.prefix),
            Raw { dtype: Dtype::I64, shape: vec![], bytes: bn.num_batches_tracked.to_le_bytes().to_vec() },
        );
    });
    out
}

/// Saves the network (and `extra` metadata) atomically to `path`.
pub fn save_model(net: &mut Net<f32>, path: &Path, extra: &[(&str, String)]) -> Result<()> {
    let mut meta: HashMap<String, String> = extra.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    meta.insert(SPEC_KEY.into(), serde_json::to_string(&net.spec)?);
    meta.insert("format".into(), "pt".into());
    let bytes = serialize(&state_dict(net), meta)?;
    write_atomic(path, &bytes)
}

/// Reads a checkpoint file and parses its header, with the file named in errors.
fn read(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read checkpoint {}", path.display()))?;
    SafeTensors::deserialize(&bytes).map_err(|e| anyhow::anyhow!("{}: not a valid safetensors file ({e})", path.display()))?;
    Ok(bytes)
}

fn metadata(bytes: &[u8]) -> HashMap<String, String> {
    SafeTensors::read_metadata(bytes).ok().and_then(|(_, m)| m.metadata().clone()).unwrap_or_default()
}

/// The network spec stored in a model checkpoint.
pub fn read_spec(path: &Path) -> Result<NetSpec> {
    let bytes = read(path)?;
    let json = metadata(&bytes)
        .remove(SPEC_KEY)
        .with_context(|| format!("{}: no simclr network spec in its metadata (not written by simclr?)", path.display()))?;
    serde_json::from_str(&json).with_context(|| format!("{}: unreadable network spec", path.display()))
}

/// Builds the network a model checkpoint describes and loads its weights.
pub fn load_net(path: &Path) -> Result<Net<f32>> {
    let mut net = Net::new(&read_spec(path)?, 0)?;
    load_model(&mut net, path)?;
    Ok(net)
}

/// Loads weights into `net`. Every tensor must be present with the right dtype and shape; the
/// error names the first that is missing, mismatched, or unexpected. Returns the metadata.
pub fn load_model(net: &mut Net<f32>, path: &Path) -> Result<HashMap<String, String>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read checkpoint {}", path.display()))?;
    load_model_bytes(net, &bytes, &path.display().to_string())
}

/// `load_model` from the bytes of a checkpoint; `name` is for errors. Every check runs before
/// any value is copied, so on error `net` is unchanged.
pub fn load_model_bytes(net: &mut Net<f32>, bytes: &[u8], name: &str) -> Result<HashMap<String, String>> {
    let st = deserialize(bytes, name)?;
    check_state_dict(net, &st, name, None)?;
    copy_state_dict(net, &st);
    Ok(metadata(bytes))
}

fn deserialize<'a>(bytes: &'a [u8], name: &str) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(bytes).map_err(|e| anyhow::anyhow!("{name}: not a valid safetensors file ({e})"))
}

/// Checks that `st` holds exactly the network's state dict (plus tensors under `extra_prefix`),
/// with the right dtypes and shapes; the error names the first offending tensor.
fn check_state_dict(net: &mut Net<f32>, st: &SafeTensors, name: &str, extra_prefix: Option<&str>) -> Result<()> {
    let expected = state_dict(net);
    let mut unexpected: Vec<&str> =
        st.names().into_iter().filter(|n| !expected.contains_key(*n) && !extra_prefix.is_some_and(|p| n.starts_with(p))).collect();
    unexpected.sort();
    if let Some(extra) = unexpected.first() {
        bail!("{name}: unexpected tensor '{extra}' (checkpoint from a different model?)");
    }
    for (tensor, want) in &expected {
        let t = st.tensor(tensor).map_err(|_| anyhow::anyhow!("{name}: missing tensor '{tensor}' (checkpoint from a different model?)"))?;
        if t.dtype() != want.dtype || t.shape() != want.shape.as_slice() {
            bail!("{name}: tensor '{tensor}' is {:?} {:?}, the model needs {:?} {:?}", t.dtype(), t.shape(), want.dtype, want.shape);
        }
    }
    Ok(())
}

fn f32_values(st: &SafeTensors, name: &str) -> Vec<f32> {
    st.tensor(name).expect("checked").data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect()
}

/// Copies a checked state dict into the network.
fn copy_state_dict(net: &mut Net<f32>, st: &SafeTensors) {
    net.visit_params(&mut |p| {
        let torch = f32_values(st, &p.name);
        for (t, &e) in p.layout.torch_to_engine().iter().enumerate() {
            p.value[e] = torch[t];
        }
    });
    net.visit_batchnorms(&mut |bn| {
        bn.running_mean = f32_values(st, &format!("{}.running_mean", bn.prefix));
        bn.running_var = f32_values(st, &format!("{}.running_var", bn.prefix));
        let nbt = st.tensor(&format!("{}.num_batches_tracked", bn.prefix)).expect("checked");
        bn.num_batches_tracked = i64::from_le_bytes(nbt.data().try_into().expect("8 bytes"));
    });
}

/// Prefix of the optimizer's tensors in a training-state file.
const OPTIMIZER: &str = "optimizer.";

/// Saves everything a resumed run needs in one file, atomically: the network (as in
/// `model.safetensors`), the optimizer's moments under `optimizer.`, and `extra` metadata.
pub fn save_train_state(net: &mut Net<f32>, opt: &Optimizer, path: &Path, extra: &[(&str, String)]) -> Result<()> {
    let mut tensors = state_dict(net);
    for (i, m) in opt.m.iter().enumerate() {
        tensors.insert(format!("{OPTIMIZER}m.{i:04}"), Raw { dtype: Dtype::F32, shape: vec![m.len()], bytes: f32_bytes(m) });
    }
    for (i, v) in opt.v.iter().enumerate().filter(|(_, v)| !v.is_empty()) {
        tensors.insert(format!("{OPTIMIZER}v.{i:04}"), Raw { dtype: Dtype::F32, shape: vec![v.len()], bytes: f32_bytes(v) });
    }
    let mut meta: HashMap<String, String> = extra.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    meta.insert(SPEC_KEY.into(), serde_json::to_string(&net.spec)?);
    meta.insert("optimizer.step".into(), opt.step.to_string());
    write_atomic(path, &serialize(&tensors, meta)?)
}

/// Restores network and optimizer from a training-state file; returns its metadata. Everything
/// is checked against the network before anything is copied.
pub fn load_train_state(net: &mut Net<f32>, opt: &mut Optimizer, path: &Path) -> Result<HashMap<String, String>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read checkpoint {}", path.display()))?;
    let name = path.display().to_string();
    let st = deserialize(&bytes, &name)?;
    check_state_dict(net, &st, &name, Some(OPTIMIZER))?;
    let meta = metadata(&bytes);
    let step: u64 =
        meta.get("optimizer.step").and_then(|s| s.parse().ok()).with_context(|| format!("{name}: no optimizer step in its metadata"))?;
    let mut sizes = Vec::new();
    net.visit_params(&mut |p| sizes.push(p.value.len()));
    let load = |moment: &str| -> Result<Vec<Vec<f32>>> {
        let prefix = format!("{OPTIMIZER}{moment}.");
        let mut names: Vec<&str> = st.names().into_iter().filter(|n| n.starts_with(&prefix)).collect();
        names.sort();
        if !names.is_empty() && names.len() != sizes.len() {
            bail!("{name}: {} optimizer '{moment}' tensors for {} parameters", names.len(), sizes.len());
        }
        names
            .iter()
            .zip(&sizes)
            .map(|(n, &len)| {
                let t = st.tensor(n)?;
                if t.dtype() != Dtype::F32 || t.shape() != [len] {
                    bail!("{name}: tensor '{n}' is {:?} {:?}, expected F32 [{len}]", t.dtype(), t.shape());
                }
                Ok(f32_values(&st, n))
            })
            .collect()
    };
    let (m, v) = (load("m")?, load("v")?);
    copy_state_dict(net, &st);
    opt.v = if v.is_empty() { vec![Vec::new(); m.len()] } else { v };
    opt.m = m;
    opt.step = step;
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::encoder::Architecture;
    use crate::nn::param::TorchLayout;

    fn spec() -> NetSpec {
        NetSpec { architecture: Architecture::Tutorial, channels: 1, size: 8, head_widths: vec![16, 8], head_batch_norm: false }
    }

    #[test]
    fn round_trip_restores_every_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let mut a = Net::<f32>::new(&spec(), 1).unwrap();
        a.visit_batchnorms(&mut |bn| {
            bn.running_mean[0] = 0.25;
            bn.num_batches_tracked = 7;
        });
        save_model(&mut a, &path, &[("step", "3".into())]).unwrap();
        let mut b = load_net(&path).unwrap();
        let (mut va, mut vb) = (Vec::new(), Vec::new());
        a.visit_params(&mut |p| va.extend_from_slice(&p.value));
        b.visit_params(&mut |p| vb.extend_from_slice(&p.value));
        assert_eq!(va, vb);
        b.visit_batchnorms(&mut |bn| assert!(bn.running_mean[0] == 0.25 && bn.num_batches_tracked == 7));
        assert_eq!(load_model(&mut b, &path).unwrap()["step"], "3");
    }

    #[test]
    fn train_state_round_trip_and_validation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train_state.safetensors");
        let mut a = Net::<f32>::new(&spec(), 1).unwrap();
        let mut opt = Optimizer::new(Default::default());
        a.visit_params(&mut |p| p.grad.fill(0.5));
        opt.step(&mut a, 0.1);
        save_train_state(&mut a, &opt, &path, &[("step", "1".into())]).unwrap();
        let mut b = Net::<f32>::new(&spec(), 2).unwrap();
        let mut opt_b = Optimizer::new(Default::default());
        assert_eq!(load_train_state(&mut b, &mut opt_b, &path).unwrap()["step"], "1");
        assert_eq!((opt_b.step, &opt_b.m, &opt_b.v), (1, &opt.m, &opt.v));
        let (mut va, mut vb) = (Vec::new(), Vec::new());
        a.visit_params(&mut |p| va.extend_from_slice(&p.value));
        b.visit_params(&mut |p| vb.extend_from_slice(&p.value));
        assert_eq!(va, vb);

        // Optimizer moments that do not fit the network are refused before anything changes.
        let mut short = opt.clone();
        short.m.pop();
        short.v.pop();
        save_train_state(&mut a, &short, &path, &[("step", "1".into())]).unwrap();
        let err = load_train_state(&mut b, &mut opt_b, &path).unwrap_err().to_string();
        assert!(err.contains("optimizer 'm' tensors"), "{err}");
    }

    #[test]
    fn wrong_dtype_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let mut net = Net::<f32>::new(&spec(), 1).unwrap();
        let mut sd = state_dict(&mut net);
        let w = sd.get_mut("head.2.bias").unwrap();
        w.dtype = Dtype::F64;
        w.bytes = vec![0; 8 * 8];
        std::fs::write(&path, serialize(&sd, HashMap::new()).unwrap()).unwrap();
        let err = load_model(&mut net, &path).unwrap_err().to_string();
        assert!(err.contains("head.2.bias") && err.contains("F64"), "{err}");
    }

    #[test]
    fn torch_layouts_permute_as_pytorch_does() {
        // Engine conv weight [cout=1, k=2, k=2, cin=2]: value (ky, kx, ci) -> torch [0, ci, ky, kx].
        let conv = TorchLayout::Conv { cout: 1, k: 2, cin: 2 }.torch_to_engine();
        assert_eq!(conv, vec![0, 2, 4, 6, 1, 3, 5, 7]);
        // A [1, h=1, w=2, c=2] map flattened: torch order (c, h, w) reads engine (h, w, c).
        let lin = TorchLayout::LinearFromNhwc { out: 1, h: 1, w: 2, c: 2 }.torch_to_engine();
        assert_eq!(lin, vec![0, 2, 1, 3]);
    }

    #[test]
    fn mismatched_checkpoint_names_the_tensor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        save_model(&mut Net::<f32>::new(&spec(), 1).unwrap(), &path, &[]).unwrap();
        let other = NetSpec { head_widths: vec![16, 4], ..spec() };
        let err = load_model(&mut Net::<f32>::new(&other, 1).unwrap(), &path).unwrap_err().to_string();
        assert!(err.contains("head.2.bias") && err.contains("model.safetensors"), "{err}");
        std::fs::write(&path, b"\x02\x00\x00\x00\x00\x00\x00\x00{}").unwrap();
        let err = load_model(&mut Net::<f32>::new(&spec(), 1).unwrap(), &path).unwrap_err().to_string();
        assert!(err.contains("missing tensor"), "{err}");
        std::fs::write(&path, b"garbage").unwrap();
        assert!(load_net(&path).unwrap_err().to_string().contains("not a valid safetensors"));
    }
}

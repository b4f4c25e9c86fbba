//! Encoders: the tutorial CNN and a small-image ResNet-18. Both map NHWC images to the
//! representation h used for evaluation.

use super::block::BasicBlock;
use crate::nn::batchnorm::BatchNorm;
use crate::nn::conv::{Conv2d, ConvSpec};
use crate::nn::param::{HasParams, Param};
use crate::nn::pool::{global_avg_pool_backward, global_avg_pool_forward};
use crate::nn::{Mode, Real, Tensor};
use anyhow::{bail, Result};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Which encoder architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Architecture {
    /// conv 3x3 32 + BN + ReLU + pool, conv 3x3 64 + BN + ReLU + pool, two residual blocks, flatten.
    Tutorial,
    /// ResNet-18 for small images: 3x3 stem, no stem pool, 4 stages of 2 basic blocks, global pool.
    Resnet18,
}

/// conv -> batch-norm -> ReLU -> optional 2x2 max-pool (fused with the batch-norm), with its
/// activations.
#[derive(Clone, Debug)]
struct ConvBnRelu<T> {
    conv: Conv2d<T>,
    bn: BatchNorm<T>,
    pool: bool,
    c: Tensor<T>,
    a: Tensor<T>,
    argmax: Vec<u8>,
    gc: Tensor<T>,
}

/// One step of an encoder.
#[derive(Clone, Debug)]
enum Stage<T> {
    ConvBnRelu(Box<ConvBnRelu<T>>),
    Block(Box<BasicBlock<T>>),
    GlobalAvgPool { out: Tensor<T> },
}

impl<T: Real> Stage<T> {
    fn conv_bn_relu(prefix: &str, conv: &str, bn: &str, spec: ConvSpec, bias: bool, pool: bool, rng: &mut ChaCha8Rng) -> Self {
        Stage::ConvBnRelu(Box::new(ConvBnRelu {
            conv: Conv2d::new(&format!("{prefix}.{conv}"), spec, bias, rng),
            bn: BatchNorm::new(&format!("{prefix}.{bn}"), spec.cout),
            pool,
            c: Tensor::default(),
            a: Tensor::default(),
            argmax: Vec::new(),
            gc: Tensor::default(),
        }))
    }

    fn output(&self) -> &Tensor<T> {
        match self {
            Stage::ConvBnRelu(s) => &s.a,
            Stage::Block(b) => b.output(),
            Stage::GlobalAvgPool { out } => out,
        }
    }

    fn forward(&mut self, x: &Tensor<T>, mode: Mode) -> Result<()> {
        match self {
            Stage::ConvBnRelu(s) => {
                s.conv.forward(x, &mut s.c)?;
                if s.pool {
                    s.bn.forward_relu_maxpool(&s.c, &mut s.a, &mut s.argmax, mode)
                } else {
                    s.bn.forward(&s.c, &mut s.a, mode, true, None)
                }
            }
            Stage::Block(b) => b.forward(x, mode),
            Stage::GlobalAvgPool { out } => global_avg_pool_forward(x, out),
        }
    }

    /// Backward from `dy`; writes `dx` when given.
    fn backward(&mut self, x: &Tensor<T>, dy: &Tensor<T>, dx: Option<&mut Tensor<T>>) -> Result<()> {
        match self {
            Stage::ConvBnRelu(s) => {
                let s = &mut **s;
                if s.pool {
                    s.bn.backward_relu_maxpool(&s.c, &s.a, &s.argmax, dy, &mut s.gc)?;
                } else {
                    s.bn.backward(&s.c, &s.a, dy, &mut s.gc, true, None)?;
                }
                s.conv.backward(x, &s.gc, dx)
            }
            Stage::Block(b) => match dx {
                Some(dx) => b.backward(x, dy, dx),
                None => b.backward(x, dy, &mut Tensor::default()),
            },
            Stage::GlobalAvgPool { .. } => match dx {
                Some(dx) => global_avg_pool_backward(x.shape(), dy, dx),
                None => Ok(()),
            },
        }
    }
}

impl<T: Real> HasParams<T> for Stage<T> {
    fn visit_params(&mut self, f: &mut dyn FnMut(&mut Param<T>)) {
        match self {
            Stage::ConvBnRelu(s) => {
                s.conv.visit_params(f);
                s.bn.visit_params(f);
            }
            Stage::Block(b) => b.visit_params(f),
            Stage::GlobalAvgPool { .. } => {}
        }
    }

    fn visit_batchnorms(&mut self, f: &mut dyn FnMut(&mut BatchNorm<T>)) {
        match self {
            Stage::ConvBnRelu(s) => f(&mut s.bn),
            Stage::Block(b) => b.visit_batchnorms(f),
            Stage::GlobalAvgPool { .. } => {}
        }
    }
}

/// An encoder: a sequence of stages whose last output, flattened, is the representation h.
#[derive(Clone, Debug)]
pub struct Encoder<T> {
    arch: Architecture,
    stages: Vec<Stage<T>>,
    in_shape: [usize; 3],
    out_shape: [usize; 3],
    g_a: Tensor<T>,
    g_b: Tensor<T>,
}

impl<T: Real> Encoder<T> {
    /// Builds `arch` for `size x size` images with `channels` channels, initialised from `rng`.
    /// Parameters are named `encoder.*`, as in the PyTorch modules of `python/simclr_torch.py`.
    pub fn new(arch: Architecture, channels: usize, size: usize, rng: &mut ChaCha8Rng) -> Result<Self> {
        if channels == 0 {
            bail!("encoder: input channels must be at least 1");
        }
        let p = "encoder";
        let (stages, out_shape) = match arch {
            Architecture::Tutorial => {
                if size < 4 {
                    bail!("tutorial encoder: views must be at least 4x4 pixels, got {size}");
                }
                let spec = |cin, cout| ConvSpec { cin, cout, kernel: 3, stride: 1, padding: 1 };
                let stages = vec![
                    Stage::conv_bn_relu(p, "conv1", "bn1", spec(channels, 32), true, true, rng),
                    Stage::conv_bn_relu(p, "conv2", "bn2", spec(32, 64), true, true, rng),
                    Stage::Block(Box::new(BasicBlock::new(&format!("{p}.res1"), 64, 64, 1, true, rng))),
                    Stage::Block(Box::new(BasicBlock::new(&format!("{p}.res2"), 64, 64, 1, true, rng))),
                ];
                (stages, [size / 4, size / 4, 64])
            }
            Architecture::Resnet18 => {
                if size < 8 {
                    bail!("resnet18 encoder: views must be at least 8x8 pixels, got {size}");
                }
                let mut stages = vec![Stage::conv_bn_relu(
                    p,
                    "conv1",
                    "bn1",
                    ConvSpec { cin: channels, cout: 64, kernel: 3, stride: 1, padding: 1 },
                    false,
                    false,
                    rng,
                )];
                let mut cin = 64;
                for (layer, cout) in [64, 128, 256, 512].into_iter().enumerate() {
                    for i in 0..2 {
                        let stride = if layer > 0 && i == 0 { 2 } else { 1 };
                        stages.push(Stage::Block(Box::new(BasicBlock::new(
                            &format!("{p}.layer{}.{i}", layer + 1),
                            cin,
                            cout,
                            stride,
                            false,
                            rng,
                        ))));
                        cin = cout;
                    }
                }
                stages.push(Stage::GlobalAvgPool { out: Tensor::default() });
                (stages, [1, 1, 512])
            }
        };
        Ok(Encoder { arch, stages, in_shape: [size, size, channels], out_shape, g_a: Tensor::default(), g_b: Tensor::default() })
    }

    /// The architecture.
    pub fn architecture(&self) -> Architecture {
        self.arch
    }

    /// `[h, w, c]` of the input images.
    pub fn input_shape(&self) -> [usize; 3] {
        self.in_shape
    }

    /// `[h, w, c]` of the last feature map, flattened (NHWC order) into h.
    pub fn feature_map_shape(&self) -> [usize; 3] {
        self.out_shape
    }

    /// Length of the representation h.
    pub fn dim(&self) -> usize {
        self.out_shape.iter().product()
    }

    /// Encodes `x` `[n, h, w, c]`; returns h as the last feature map (flatten it with `dim()`).
    pub fn forward(&mut self, x: &Tensor<T>, mode: Mode) -> Result<&Tensor<T>> {
        let (_, h, w, c) = x.nhwc()?;
        if [h, w, c] != self.in_shape {
            bail!("encoder: expected images of shape {:?} (h, w, c), got batch {:?}", self.in_shape, x.shape());
        }
        for i in 0..self.stages.len() {
            let (done, rest) = self.stages.split_at_mut(i);
            let input = done.last().map_or(x, |s| s.output());
            rest[0].forward(input, mode)?;
        }
        Ok(self.stages.last().expect("encoders have stages").output())
    }

    /// The last feature map computed by `forward`.
    pub fn forward_output(&self) -> &Tensor<T> {
        self.stages.last().expect("encoders have stages").output()
    }

    /// Backward from the gradient of h (any shape with h's element count); accumulates
    /// parameter gradients and writes the input gradient when asked. `x` is the input of the
    /// last forward.
    pub fn backward(&mut self, x: &Tensor<T>, dh: &Tensor<T>, mut dx: Option<&mut Tensor<T>>) -> Result<()> {
        let last_shape = self.stages.last().expect("encoders have stages").output().shape().to_vec();
        self.g_a.resize(&last_shape);
        if dh.len() != self.g_a.len() {
            bail!("encoder: gradient of h has shape {:?}, expected {:?}", dh.shape(), last_shape);
        }
        self.g_a.data_mut().copy_from_slice(dh.data());
        for i in (0..self.stages.len()).rev() {
            let (done, rest) = self.stages.split_at_mut(i);
            let input = done.last().map_or(x, |s| s.output());
            let dx = if i > 0 { Some(&mut self.g_b) } else { dx.as_deref_mut() };
            rest[0].backward(input, &self.g_a, dx)?;
            std::mem::swap(&mut self.g_a, &mut self.g_b);
        }
        Ok(())
    }
}

impl<T: Real> HasParams<T> for Encoder<T> {
    fn visit_params(&mut self, f: &mut dyn FnMut(&mut Param<T>)) {
        for s in &mut self.stages {
            s.visit_params(f);
        }
    }

    fn visit_batchnorms(&mut self, f: &mut dyn FnMut(&mut BatchNorm<T>)) {
        for s in &mut self.stages {
            s.visit_batchnorms(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::{check_layer_probing, random_tensor};
    use rand::SeedableRng;

    fn check(arch: Architecture, channels: usize, size: usize, probes: usize) {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut enc = Encoder::<f64>::new(arch, channels, size, &mut rng).unwrap();
        let x = random_tensor(&[3, size, size, channels], 31);
        check_layer_probing(
            probes,
            &x,
            &mut enc,
            |e, x, y| *y = e.forward(x, Mode::Train).unwrap().clone(),
            |e, x, _y, dy, dx| e.backward(x, dy, Some(dx)).unwrap(),
        );
    }

    #[test]
    fn tutorial_encoder_gradients() {
        check(Architecture::Tutorial, 1, 8, 20);
    }

    #[test]
    fn resnet18_gradients_through_global_pool() {
        // Three probes in each of its 62 tensors keep the test to seconds.
        check(Architecture::Resnet18, 2, 8, 3);
    }

    #[test]
    fn shapes_and_names() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut enc = Encoder::<f32>::new(Architecture::Tutorial, 1, 24, &mut rng).unwrap();
        assert_eq!(enc.dim(), 2304);
        let mut names = Vec::new();
        enc.visit_params(&mut |p| names.push(p.name.clone()));
        assert_eq!(names[0], "encoder.conv1.weight");
        assert!(names.contains(&"encoder.res2.bn2.bias".to_string()));
        let mut r18 = Encoder::<f32>::new(Architecture::Resnet18, 3, 32, &mut rng).unwrap();
        assert_eq!(r18.dim(), 512);
        let mut count = 0;
        r18.visit_params(&mut |p| count += p.value.len());
        // torchvision's resnet18 has 11,689,512 parameters; without its fc (513,000) and with a
        // 3x3 stem instead of 7x7 (9,408 -> 1,728): 11,168,832.
        assert_eq!(count, 11_168_832);
        let out = r18.forward(&Tensor::zeros(&[2, 32, 32, 3]), Mode::Train).unwrap();
        assert_eq!(out.shape(), &[2, 512]);
    }

    #[test]
    fn wrong_image_shape_is_an_error() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut enc = Encoder::<f32>::new(Architecture::Tutorial, 1, 24, &mut rng).unwrap();
        let err = enc.forward(&Tensor::zeros(&[2, 28, 28, 1]), Mode::Train).unwrap_err().to_string();
        assert!(err.contains("[24, 24, 1]") && err.contains("[2, 28, 28, 1]"), "{err}");
    }
}

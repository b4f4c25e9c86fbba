//! Finite-difference gradient checks in f64 for layers, blocks and whole models (tests only).

use super::param::HasParams;
use super::Tensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A tensor of U(-1, 1) values.
pub fn random_tensor(shape: &[usize], seed: u64) -> Tensor<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    Tensor::from_vec(shape, (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()).unwrap()
}

/// Finite-difference step.
const EPS: f64 = 1e-6;
/// Largest number of coordinates probed per tensor (spread evenly over it).
const PROBES: usize = 40;

/// Asserts that an analytic derivative matches a central difference.
pub fn assert_close(what: &str, analytic: f64, numeric: f64) {
    let tol = 1e-6 * (1.0 + analytic.abs().max(numeric.abs()));
    assert!((analytic - numeric).abs() <= tol, "{what}: analytic {analytic:.9e} vs numeric {numeric:.9e}");
}

/// Checks an analytic derivative against differences of the loss at `x - eps`, `x`, `x + eps`.
///
/// It passes when the central difference agrees, or when the analytic value lies between the two
/// one-sided differences. The second case covers a ReLU or max-pool kink inside the step (a
/// whole network has hundreds of thousands of units, and a step of one weight moves all of them)
/// and strong curvature; the bracket is about `eps * f''` wide, so a wrong index or a missing term
/// still fails.
fn assert_derivative(what: &str, analytic: f64, (down, mid, up): (f64, f64, f64), eps: f64) {
    let central = (up - down) / (2.0 * eps);
    let (fwd, bwd) = ((up - mid) / eps, (mid - down) / eps);
    let tol = 1e-6 * (1.0 + analytic.abs().max(central.abs()));
    let bracketed = analytic >= fwd.min(bwd) - tol && analytic <= fwd.max(bwd) + tol;
    if !bracketed {
        assert_close(what, analytic, central);
    }
}

/// At most `count` indices spread evenly over a tensor of `len` values.
fn probes(len: usize, count: usize) -> impl Iterator<Item = usize> {
    let step = len.div_ceil(count).max(1);
    (0..len).step_by(step)
}

/// Adds `delta` to coordinate `j` of the `index`-th parameter of `layer`.
fn nudge<L: HasParams<f64>>(layer: &mut L, index: usize, j: usize, delta: f64) {
    let mut i = 0;
    layer.visit_params(&mut |p| {
        if i == index {
            p.value[j] += delta;
        }
        i += 1;
    });
}

/// Checks the input and parameter gradients of `layer` for the loss `sum(y * r)`, r random.
///
/// `forward(layer, x, y)` computes the output; `backward(layer, x, y, dy, dx)` accumulates
/// parameter gradients and writes the input gradient.
pub fn check_layer<L: HasParams<f64>>(
    x: &Tensor<f64>,
    layer: &mut L,
    forward: impl FnMut(&mut L, &Tensor<f64>, &mut Tensor<f64>),
    backward: impl FnMut(&mut L, &Tensor<f64>, &Tensor<f64>, &Tensor<f64>, &mut Tensor<f64>),
) {
    check_layer_probing(PROBES, x, layer, forward, backward)
}

/// `check_layer` probing at most `count` coordinates of each tensor (for large networks).
pub fn check_layer_probing<L: HasParams<f64>>(
    count: usize,
    x: &Tensor<f64>,
    layer: &mut L,
    mut forward: impl FnMut(&mut L, &Tensor<f64>, &mut Tensor<f64>),
    mut backward: impl FnMut(&mut L, &Tensor<f64>, &Tensor<f64>, &Tensor<f64>, &mut Tensor<f64>),
) {
    let mut y = Tensor::default();
    forward(layer, x, &mut y);
    let r = random_tensor(y.shape(), 99);
    layer.visit_params(&mut |p| p.zero_grad());
    let mut dx = Tensor::default();
    backward(layer, x, &y, &r, &mut dx);
    let mut loss = |layer: &mut L, x: &Tensor<f64>| {
        let mut y = Tensor::default();
        forward(layer, x, &mut y);
        y.data().iter().zip(r.data()).map(|(a, b)| a * b).sum::<f64>()
    };
    assert_eq!(dx.shape(), x.shape(), "input gradient shape");

    let mid = loss(layer, x);
    let mut xp = x.clone();
    for j in probes(x.len(), count) {
        let v = xp.data()[j];
        xp.data_mut()[j] = v + EPS;
        let up = loss(layer, &xp);
        xp.data_mut()[j] = v - EPS;
        let down = loss(layer, &xp);
        xp.data_mut()[j] = v;
        assert_derivative(&format!("input[{j}]"), dx.data()[j], (down, mid, up), EPS);
    }

    let mut grads = Vec::new();
    layer.visit_params(&mut |p| grads.push((p.name.clone(), p.grad.clone())));
    for (index, (name, grad)) in grads.iter().enumerate() {
        for j in probes(grad.len(), count) {
            nudge(layer, index, j, EPS);
            let up = loss(layer, x);
            nudge(layer, index, j, -2.0 * EPS);
            let down = loss(layer, x);
            nudge(layer, index, j, EPS);
            assert_derivative(&format!("{name}[{j}]"), grad[j], (down, mid, up), EPS);
        }
    }
}

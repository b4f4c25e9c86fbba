//! A dense tensor: a shape and a flat row-major buffer. Images are NHWC, vectors [rows, features].

use super::Real;
use anyhow::{bail, Result};

/// A dense row-major tensor. The buffer keeps its capacity when reshaped, so that activation
/// tensors can be reused from step to step without allocating.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tensor<T> {
    shape: Vec<usize>,
    data: Vec<T>,
}

impl<T: Real> Tensor<T> {
    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Self {
        Tensor { shape: shape.to_vec(), data: vec![T::ZERO; shape.iter().product()] }
    }

    /// Wraps a buffer; fails when its length is not the product of the shape.
    pub fn from_vec(shape: &[usize], data: Vec<T>) -> Result<Self> {
        let want: usize = shape.iter().product();
        if want != data.len() {
            bail!("shape {:?} needs {} values, got {}", shape, want, data.len());
        }
        Ok(Tensor { shape: shape.to_vec(), data })
    }

    /// Sets the shape, reusing the buffer; the contents are unspecified afterwards (zeros when grown).
    pub fn resize(&mut self, shape: &[usize]) {
        self.shape.clear();
        self.shape.extend_from_slice(shape);
        self.data.resize(shape.iter().product(), T::ZERO);
    }

    /// Sets the shape and fills with zeros, reusing the buffer.
    pub fn resize_zeroed(&mut self, shape: &[usize]) {
        self.resize(shape);
        self.data.fill(T::ZERO);
    }

    /// Changes the shape without moving data; fails when the element count differs.
    pub fn reshape(&mut self, shape: &[usize]) -> Result<()> {
        if shape.iter().product::<usize>() != self.data.len() {
            bail!("cannot reshape {:?} to {:?}", self.shape, shape);
        }
        self.shape = shape.to_vec();
        Ok(())
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The values, row-major.
    pub fn data(&self) -> &[T] {
        &self.data
    }

    /// The values, mutable.
    pub fn data_mut(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// Consumes the tensor, returning its buffer.
    pub fn into_vec(self) -> Vec<T> {
        self.data
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the tensor holds no values.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The four dimensions of an NHWC image batch, or an error naming the shape.
    pub fn nhwc(&self) -> Result<(usize, usize, usize, usize)> {
        match self.shape[..] {
            [n, h, w, c] => Ok((n, h, w, c)),
            _ => bail!("expected an NHWC image batch [n, h, w, c], got shape {:?}", self.shape),
        }
    }

    /// Views the tensor as a matrix [first dimension, product of the rest].
    pub fn rows_cols(&self) -> (usize, usize) {
        let rows = self.shape.first().copied().unwrap_or(1);
        let cols = self.data.len().checked_div(rows).unwrap_or(0);
        (rows, cols)
    }

    /// Converts element type (e.g. f32 -> f64 for gradient checks).
    pub fn cast<U: Real>(&self) -> Tensor<U> {
        Tensor { shape: self.shape.clone(), data: self.data.iter().map(|v| U::from_f64(v.to_f64())).collect() }
    }
}

/// Fails with both shapes named when `got` differs from `want`.
pub fn check_shape(what: &str, got: &[usize], want: &[usize]) -> Result<()> {
    if got != want {
        bail!("{what}: expected shape {want:?}, got {got:?}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_vec_rejects_wrong_length_naming_shape() {
        let err = Tensor::<f32>::from_vec(&[2, 3], vec![0.0; 5]).unwrap_err().to_string();
        assert!(err.contains("[2, 3]") && err.contains('5'), "{err}");
    }

    #[test]
    fn resize_reuses_and_reshape_checks_count() {
        let mut t = Tensor::<f32>::zeros(&[4, 4]);
        t.resize(&[2, 8]);
        assert_eq!(t.shape(), &[2, 8]);
        assert!(t.reshape(&[3, 5]).is_err());
        assert!(t.reshape(&[16]).is_ok());
    }

    #[test]
    fn nhwc_names_bad_shape() {
        let t = Tensor::<f32>::zeros(&[2, 3]);
        assert!(t.nhwc().unwrap_err().to_string().contains("[2, 3]"));
    }
}

//! Upload a file tensor to a burn device, and bring a burn tensor back as a file tensor.

use burn::tensor::{DType as BurnDType, Device, FloatDType, Tensor, TensorData};
use samplediff_formats::{DType, RawTensor};

use crate::encode::encode;
use crate::{Result, TensorError};

/// The float precision computations on `device` use: f64 where the device supports it (the CPU
/// backend does), f32 otherwise (most GPUs through wgpu). Every file dtype decodes exactly into
/// f64; into f32 only F64 and I64/I32 beyond 2^24 round.
pub fn compute_dtype(device: &Device) -> FloatDType {
    if device.supports_dtype(BurnDType::F64) { FloatDType::F64 } else { FloatDType::F32 }
}

/// Element count of `shape`, or an error when the product overflows.
pub fn checked_numel(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| TensorError::new(format!("shape {shape:?} has more elements than fit in memory")))
}

/// Check that `raw` holds exactly `numel × dtype size` bytes; returns numel.
pub fn validate(raw: &RawTensor) -> Result<usize> {
    let numel = checked_numel(&raw.shape)?;
    let want = numel
        .checked_mul(raw.dtype.size())
        .ok_or_else(|| TensorError::new(format!("tensor '{}': shape {:?} is too large", raw.name, raw.shape)))?;
    if raw.data.len() != want {
        return Err(TensorError::new(format!(
            "tensor '{}': {} {:?} needs {want} bytes but holds {}",
            raw.name,
            raw.dtype,
            raw.shape,
            raw.data.len()
        )));
    }
    Ok(numel)
}

/// A file tensor living on a burn device: its values flattened in C order (burn tensors have a
/// compile-time rank, file tensors any rank, so the flat form is the common currency; reshape
/// with [`DeviceTensor::reshaped`] when a fixed rank is needed), in [`compute_dtype`] precision,
/// plus the shape and dtype it came from.
#[derive(Clone, Debug)]
pub struct DeviceTensor {
    pub name: String,
    /// The file's shape (`[]` for a 0-d scalar, which holds one element).
    pub shape: Vec<usize>,
    /// The dtype the values came from; decides tolerances and ULP units.
    pub dtype: DType,
    /// `numel` values, C order.
    pub values: Tensor<1>,
}

impl DeviceTensor {
    /// Decode `raw` and upload it to `device` as float values in [`compute_dtype`] precision.
    pub fn upload(raw: &RawTensor, device: &Device) -> Result<Self> {
        Self::upload_as(raw, device, compute_dtype(device))
    }

    /// Decode `raw` and upload it in `precision` (F64 or F32; narrower types are refused, they
    /// would round most file values). Lets a caller pick f32 on a device that has f64.
    pub fn upload_as(raw: &RawTensor, device: &Device, precision: FloatDType) -> Result<Self> {
        let numel = validate(raw)?;
        let data = match precision {
            FloatDType::F64 => TensorData::new(raw.to_f64_vec(), [numel]),
            FloatDType::F32 => TensorData::new(raw.to_f32_vec(), [numel]),
            other => return Err(TensorError::new(format!("cannot compute in {other:?}: use F64 or F32"))),
        };
        if !device.supports_dtype(BurnDType::from(precision)) {
            return Err(TensorError::new(format!("the device does not support {precision:?}")));
        }
        let values = Tensor::<1>::from_data(data, (device, precision.into()));
        Ok(Self { name: raw.name.clone(), shape: raw.shape.clone(), dtype: raw.dtype, values })
    }

    /// Wrap a burn tensor computed elsewhere; `dtype` is what it stands for (used when written back).
    pub fn from_tensor<const D: usize>(name: impl Into<String>, tensor: Tensor<D>, dtype: DType) -> Self {
        let shape = tensor.dims().to_vec();
        let numel = shape.iter().product::<usize>();
        Self { name: name.into(), shape, dtype, values: tensor.reshape([numel]) }
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The values with a fixed rank `D` (a 0-d scalar is accepted as rank 1 of one element).
    pub fn reshaped<const D: usize>(&self) -> Result<Tensor<D>> {
        if self.shape.is_empty() && D == 1 {
            return Ok(self.values.clone().reshape([1; D]));
        }
        let dims: [usize; D] = self.shape.as_slice().try_into().map_err(|_| {
            TensorError::new(format!("tensor '{}' has rank {}, expected {D}", self.name, self.shape.len()))
        })?;
        Ok(self.values.clone().reshape(dims))
    }

    /// Read the values back to the host as f64.
    pub fn to_f64_vec(&self) -> Result<Vec<f64>> {
        read_f64(self.values.clone())
    }

    /// Bring the tensor back as a file tensor of `dtype` (see [`crate::encode`] for rounding).
    pub fn download(&self, dtype: DType) -> Result<RawTensor> {
        let values = self.to_f64_vec()?;
        Ok(RawTensor::from_vec(self.name.clone(), dtype, self.shape.clone(), encode(&values, dtype)))
    }
}

/// Read any float tensor back to the host as f64 values (C order).
pub fn read_f64<const D: usize>(t: Tensor<D>) -> Result<Vec<f64>> {
    t.try_into_vec_as::<f64>().map_err(|e| TensorError::new(format!("cannot read tensor back from the device: {e}")))
}

/// Read any int tensor back to the host as i64 values (C order).
pub fn read_i64<const D: usize>(t: Tensor<D, burn::tensor::Int>) -> Result<Vec<i64>> {
    t.try_into_vec_as::<i64>().map_err(|e| TensorError::new(format!("cannot read tensor back from the device: {e}")))
}

/// Upload a file tensor with a fixed rank `D`.
pub fn to_tensor<const D: usize>(raw: &RawTensor, device: &Device) -> Result<Tensor<D>> {
    DeviceTensor::upload(raw, device)?.reshaped::<D>()
}

/// A burn tensor as a file tensor of `dtype`.
pub fn to_raw<const D: usize>(name: impl Into<String>, tensor: Tensor<D>, dtype: DType) -> Result<RawTensor> {
    DeviceTensor::from_tensor(name, tensor, dtype).download(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;
    use samplediff_formats::Bytes;

    fn every_dtype() -> [DType; 12] {
        use DType::*;
        [F64, F32, F16, BF16, F8_E4M3, F8_E5M2, I64, I32, I16, I8, U8, BOOL]
    }

    #[test]
    fn flex_computes_in_f64() {
        assert_eq!(compute_dtype(&Device::flex()), FloatDType::F64);
    }

    #[test]
    fn every_dtype_uploads_and_comes_back_bit_exact() {
        let device = Device::flex();
        let values: [f64; 8] = [0.0, 1.0, -2.0, 0.5, 3.0, 1.0, 0.0, -1.0];
        for dtype in every_dtype() {
            let vals: Vec<f64> = match dtype {
                DType::U8 | DType::BOOL => values.iter().map(|v| v.abs().min(1.0).floor()).collect(),
                d if !d.is_float() => values.iter().map(|v| v.trunc()).collect(),
                _ => values.to_vec(),
            };
            let raw = RawTensor::from_vec("x", dtype, vec![2, 4], encode(&vals, dtype));
            let t = DeviceTensor::upload(&raw, &device).unwrap();
            assert_eq!(t.values.dtype(), BurnDType::F64);
            assert_eq!(t.to_f64_vec().unwrap(), vals, "{dtype}");
            let back = t.download(dtype).unwrap();
            assert_eq!(&*back.data, &*raw.data, "{dtype}");
            assert_eq!(back.shape, vec![2, 4]);
            let fixed: Tensor<2> = t.reshaped().unwrap();
            assert_eq!(fixed.dims(), [2, 4]);
            assert!(t.reshaped::<3>().is_err());
        }
    }

    #[test]
    fn f32_precision_on_request() {
        let raw = RawTensor::from_f32("x", vec![3], &[1.5, -2.0, 1e-3]);
        let t = DeviceTensor::upload_as(&raw, &Device::flex(), FloatDType::F32).unwrap();
        assert_eq!(t.values.dtype(), BurnDType::F32);
        assert_eq!(&*t.download(DType::F32).unwrap().data, &*raw.data);
        assert!(DeviceTensor::upload_as(&raw, &Device::flex(), FloatDType::F16).is_err());
    }

    #[test]
    fn scalars_and_empty_tensors_cross() {
        let device = Device::flex();
        let scalar = RawTensor::from_f32("s", vec![], &[2.5]);
        let t = DeviceTensor::upload(&scalar, &device).unwrap();
        assert_eq!(t.to_f64_vec().unwrap(), vec![2.5]);
        assert_eq!(t.reshaped::<1>().unwrap().dims(), [1]);
        assert_eq!(&*t.download(DType::F32).unwrap().data, &*scalar.data);

        let empty = RawTensor::from_f32("e", vec![3, 0, 2], &[]);
        let t = DeviceTensor::upload(&empty, &device).unwrap();
        assert_eq!(t.numel(), 0);
        assert!(t.to_f64_vec().unwrap().is_empty());
        assert_eq!(t.download(DType::F16).unwrap().shape, vec![3, 0, 2]);
    }

    #[test]
    fn bad_layouts_are_errors_not_panics() {
        let device = Device::flex();
        let short = RawTensor { name: "t".into(), dtype: DType::F32, shape: vec![4], data: Bytes::new(vec![0u8; 12]) };
        let e = DeviceTensor::upload(&short, &device).unwrap_err();
        assert!(e.0.contains("needs 16 bytes but holds 12"), "{e}");
        let huge =
            RawTensor { name: "t".into(), dtype: DType::F32, shape: vec![usize::MAX, 3], data: Bytes::new(vec![]) };
        assert!(DeviceTensor::upload(&huge, &device).is_err());
    }
}

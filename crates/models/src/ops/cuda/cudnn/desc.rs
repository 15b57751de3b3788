//! Owned cuDNN objects: the handle and the tensor, filter, convolution and activation
//! descriptors, each created by one cuDNN call and destroyed by its pair on drop ([`owned!`]),
//! then set up for dense NCHW fp32 data as the convolutions use it.

use std::ffi::c_int;

use cudarc::cudnn::sys;

use super::ffi::{self, Code, STATUS_SUCCESS};
use crate::ops::cudnn_codes::MathType;

/// A cuDNN status as a result (the error is the status itself; callers add the context).
pub(super) fn status(s: Code) -> std::result::Result<(), Code> {
    if s == STATUS_SUCCESS {
        Ok(())
    } else {
        Err(s)
    }
}

fn dims_i32(d: [usize; 4]) -> [c_int; 4] {
    // Key::new checked every dimension against c_int::MAX.
    d.map(|v| v as c_int)
}

/// A newtype owning one cuDNN object of raw type `$raw`: `create()` makes it with `$create`,
/// drop destroys it with `$destroy`. Teardown errors are ignored: the objects are dropped at
/// thread exit at the latest, possibly after the CUDA context has begun shutting down, where
/// there is nothing left to report to.
macro_rules! owned {
    ($(#[$doc:meta])* $name:ident($raw:ty), $create:ident, $destroy:ident) => {
        $(#[$doc])*
        pub(super) struct $name(pub(super) $raw);

        impl $name {
            /// A fresh object, owned by the returned value.
            pub(super) fn create() -> std::result::Result<Self, Code> {
                let mut raw = std::ptr::null_mut();
                // SAFETY: out-pointer to a local; ownership moves into the value right after.
                unsafe { status(ffi::$create(&mut raw))? };
                Ok(Self(raw))
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                // SAFETY: created by `create`, destroyed exactly once, here.
                unsafe {
                    ffi::$destroy(self.0);
                }
            }
        }
    };
}

owned!(
    /// An owned cuDNN handle.
    Handle(sys::cudnnHandle_t),
    cudnnCreate,
    cudnnDestroy
);
owned!(
    /// An owned tensor descriptor (dense NCHW fp32).
    TensorDesc(sys::cudnnTensorDescriptor_t),
    cudnnCreateTensorDescriptor,
    cudnnDestroyTensorDescriptor
);
owned!(
    /// An owned filter descriptor (`[O, C, kh, kw]`, fp32).
    FilterDesc(sys::cudnnFilterDescriptor_t),
    cudnnCreateFilterDescriptor,
    cudnnDestroyFilterDescriptor
);
owned!(
    /// An owned convolution descriptor (cross-correlation, as PyTorch's conv2d, fp32
    /// accumulation).
    ConvDesc(sys::cudnnConvolutionDescriptor_t),
    cudnnCreateConvolutionDescriptor,
    cudnnDestroyConvolutionDescriptor
);
owned!(
    /// An owned ReLU activation descriptor.
    ReluDesc(sys::cudnnActivationDescriptor_t),
    cudnnCreateActivationDescriptor,
    cudnnDestroyActivationDescriptor
);

impl TensorDesc {
    pub(super) fn nchw(dims: [usize; 4]) -> std::result::Result<Self, Code> {
        let desc = Self::create()?;
        let [n, c, h, w] = dims_i32(dims);
        // SAFETY: `desc.0` is a live descriptor.
        unsafe {
            status(ffi::cudnnSetTensor4dDescriptor(
                desc.0,
                ffi::TENSOR_NCHW,
                ffi::DATA_FLOAT,
                n,
                c,
                h,
                w,
            ))?
        };
        Ok(desc)
    }
}

impl FilterDesc {
    pub(super) fn new(dims: [usize; 4]) -> std::result::Result<Self, Code> {
        let desc = Self::create()?;
        let [o, c, h, w] = dims_i32(dims);
        // SAFETY: `desc.0` is a live descriptor.
        unsafe {
            status(ffi::cudnnSetFilter4dDescriptor(
                desc.0,
                ffi::DATA_FLOAT,
                ffi::TENSOR_NCHW,
                o,
                c,
                h,
                w,
            ))?
        };
        Ok(desc)
    }
}

impl ConvDesc {
    pub(super) fn new(
        stride: usize,
        pad: usize,
        math: MathType,
    ) -> std::result::Result<Self, Code> {
        let desc = Self::create()?;
        let (s, p) = (stride as c_int, pad as c_int);
        // SAFETY: `desc.0` is a live descriptor.
        unsafe {
            status(ffi::cudnnSetConvolution2dDescriptor(
                desc.0,
                p,
                p,
                s,
                s,
                1,
                1,
                ffi::CROSS_CORRELATION,
                ffi::DATA_FLOAT,
            ))?;
        }
        desc.set_math(math)?;
        Ok(desc)
    }

    pub(super) fn set_math(&self, math: MathType) -> std::result::Result<(), Code> {
        // SAFETY: `self.0` is a live descriptor.
        unsafe { status(ffi::cudnnSetConvolutionMathType(self.0, math.code())) }
    }
}

impl ReluDesc {
    pub(super) fn new() -> std::result::Result<Self, Code> {
        let desc = Self::create()?;
        // NOT_PROPAGATE_NAN maps NaN to 0 like the CPU path's `if v > 0 { v } else { 0 }`.
        // SAFETY: `desc.0` is a live descriptor.
        unsafe {
            status(ffi::cudnnSetActivationDescriptor(
                desc.0,
                ffi::ACTIVATION_RELU,
                ffi::NOT_PROPAGATE_NAN,
                0.0,
            ))?;
        }
        Ok(desc)
    }
}

//! Our own declarations of the cuDNN functions the convolutions call, with every status,
//! algorithm and math type an integer ([`Code`]): cudarc's bindings declare them as
//! `#[repr(u32)]` Rust enums, and a value cuDNN writes that such an enum lacks (a newer cuDNN)
//! would be undefined behaviour. What cuDNN writes is decoded by `ops::cudnn_codes`, which
//! names an unknown value instead. Only the opaque handle and descriptor pointer types come
//! from cudarc; the library is linked by cudarc's build script (`dynamic-linking`), and named
//! here too so that these declarations do not depend on it.
//!
//! The inputs we pass are cuDNN's values written as constants from cudarc's enumerations
//! (converting our own, known value to an integer is always defined).

use std::ffi::{c_char, c_int, c_void};

use cudarc::cudnn::sys::{
    self, cudaStream_t, cudnnActivationDescriptor_t, cudnnConvolutionDescriptor_t,
    cudnnFilterDescriptor_t, cudnnHandle_t, cudnnTensorDescriptor_t,
};

pub(super) use crate::ops::cudnn_codes::{Code, RawPerf, STATUS_SUCCESS};

/// `CUDNN_DATA_FLOAT`.
pub(super) const DATA_FLOAT: Code = sys::cudnnDataType_t::CUDNN_DATA_FLOAT as Code;
/// `CUDNN_TENSOR_NCHW`.
pub(super) const TENSOR_NCHW: Code = sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW as Code;
/// `CUDNN_CROSS_CORRELATION`.
pub(super) const CROSS_CORRELATION: Code =
    sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION as Code;
/// `CUDNN_ACTIVATION_RELU`.
pub(super) const ACTIVATION_RELU: Code = sys::cudnnActivationMode_t::CUDNN_ACTIVATION_RELU as Code;
/// `CUDNN_NOT_PROPAGATE_NAN`.
pub(super) const NOT_PROPAGATE_NAN: Code =
    sys::cudnnNanPropagation_t::CUDNN_NOT_PROPAGATE_NAN as Code;

// The decoding in `cudnn_codes` is written from cuDNN's headers; these fail to compile if
// cudarc's bindings (the same headers) disagree.
const _: () = {
    assert!(sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS as Code == STATUS_SUCCESS);
    assert!(sys::cudnnMathType_t::CUDNN_FMA_MATH as Code == 3);
    assert!(sys::cudnnMathType_t::CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION as Code == 2);
    assert!(sys::cudnnDeterminism_t::CUDNN_DETERMINISTIC as Code == 1);
    assert!(sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_COUNT as Code == 8);
    assert!(sys::cudnnConvolutionBwdDataAlgo_t::CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT as Code == 6);
    assert!(
        sys::cudnnConvolutionBwdFilterAlgo_t::CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT as Code == 7
    );
    assert!(
        sys::cudnnConvolutionBwdFilterAlgo_t::CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING as Code
            == 6
    );
    assert!(
        std::mem::size_of::<RawPerf>() == std::mem::size_of::<sys::cudnnConvolutionFwdAlgoPerf_t>()
    );
    assert!(
        std::mem::size_of::<RawPerf>()
            == std::mem::size_of::<sys::cudnnConvolutionBwdDataAlgoPerf_t>()
    );
    assert!(
        std::mem::size_of::<RawPerf>()
            == std::mem::size_of::<sys::cudnnConvolutionBwdFilterAlgoPerf_t>()
    );
};

#[link(name = "cudnn")]
#[allow(non_snake_case)]
extern "C" {
    pub(super) fn cudnnActivationForward(
        handle: cudnnHandle_t,
        activationDesc: cudnnActivationDescriptor_t,
        alpha: *const c_void,
        xDesc: cudnnTensorDescriptor_t,
        x: *const c_void,
        beta: *const c_void,
        yDesc: cudnnTensorDescriptor_t,
        y: *mut c_void,
    ) -> Code;
    pub(super) fn cudnnAddTensor(
        handle: cudnnHandle_t,
        alpha: *const c_void,
        aDesc: cudnnTensorDescriptor_t,
        A: *const c_void,
        beta: *const c_void,
        cDesc: cudnnTensorDescriptor_t,
        C: *mut c_void,
    ) -> Code;
    pub(super) fn cudnnConvolutionBackwardBias(
        handle: cudnnHandle_t,
        alpha: *const c_void,
        dyDesc: cudnnTensorDescriptor_t,
        dy: *const c_void,
        beta: *const c_void,
        dbDesc: cudnnTensorDescriptor_t,
        db: *mut c_void,
    ) -> Code;
    pub(super) fn cudnnConvolutionBackwardData(
        handle: cudnnHandle_t,
        alpha: *const c_void,
        wDesc: cudnnFilterDescriptor_t,
        w: *const c_void,
        dyDesc: cudnnTensorDescriptor_t,
        dy: *const c_void,
        convDesc: cudnnConvolutionDescriptor_t,
        algo: Code,
        workSpace: *mut c_void,
        workSpaceSizeInBytes: usize,
        beta: *const c_void,
        dxDesc: cudnnTensorDescriptor_t,
        dx: *mut c_void,
    ) -> Code;
    pub(super) fn cudnnConvolutionBackwardFilter(
        handle: cudnnHandle_t,
        alpha: *const c_void,
        xDesc: cudnnTensorDescriptor_t,
        x: *const c_void,
        dyDesc: cudnnTensorDescriptor_t,
        dy: *const c_void,
        convDesc: cudnnConvolutionDescriptor_t,
        algo: Code,
        workSpace: *mut c_void,
        workSpaceSizeInBytes: usize,
        beta: *const c_void,
        dwDesc: cudnnFilterDescriptor_t,
        dw: *mut c_void,
    ) -> Code;
    pub(super) fn cudnnConvolutionBiasActivationForward(
        handle: cudnnHandle_t,
        alpha1: *const c_void,
        xDesc: cudnnTensorDescriptor_t,
        x: *const c_void,
        wDesc: cudnnFilterDescriptor_t,
        w: *const c_void,
        convDesc: cudnnConvolutionDescriptor_t,
        algo: Code,
        workSpace: *mut c_void,
        workSpaceSizeInBytes: usize,
        alpha2: *const c_void,
        zDesc: cudnnTensorDescriptor_t,
        z: *const c_void,
        biasDesc: cudnnTensorDescriptor_t,
        bias: *const c_void,
        activationDesc: cudnnActivationDescriptor_t,
        yDesc: cudnnTensorDescriptor_t,
        y: *mut c_void,
    ) -> Code;
    pub(super) fn cudnnConvolutionForward(
        handle: cudnnHandle_t,
        alpha: *const c_void,
        xDesc: cudnnTensorDescriptor_t,
        x: *const c_void,
        wDesc: cudnnFilterDescriptor_t,
        w: *const c_void,
        convDesc: cudnnConvolutionDescriptor_t,
        algo: Code,
        workSpace: *mut c_void,
        workSpaceSizeInBytes: usize,
        beta: *const c_void,
        yDesc: cudnnTensorDescriptor_t,
        y: *mut c_void,
    ) -> Code;
    pub(super) fn cudnnFindConvolutionBackwardDataAlgorithmEx(
        handle: cudnnHandle_t,
        wDesc: cudnnFilterDescriptor_t,
        w: *const c_void,
        dyDesc: cudnnTensorDescriptor_t,
        dy: *const c_void,
        convDesc: cudnnConvolutionDescriptor_t,
        dxDesc: cudnnTensorDescriptor_t,
        dx: *mut c_void,
        requestedAlgoCount: c_int,
        returnedAlgoCount: *mut c_int,
        perfResults: *mut RawPerf,
        workSpace: *mut c_void,
        workSpaceSizeInBytes: usize,
    ) -> Code;
    pub(super) fn cudnnFindConvolutionBackwardFilterAlgorithmEx(
        handle: cudnnHandle_t,
        xDesc: cudnnTensorDescriptor_t,
        x: *const c_void,
        dyDesc: cudnnTensorDescriptor_t,
        y: *const c_void,
        convDesc: cudnnConvolutionDescriptor_t,
        dwDesc: cudnnFilterDescriptor_t,
        dw: *mut c_void,
        requestedAlgoCount: c_int,
        returnedAlgoCount: *mut c_int,
        perfResults: *mut RawPerf,
        workSpace: *mut c_void,
        workSpaceSizeInBytes: usize,
    ) -> Code;
    pub(super) fn cudnnFindConvolutionForwardAlgorithmEx(
        handle: cudnnHandle_t,
        xDesc: cudnnTensorDescriptor_t,
        x: *const c_void,
        wDesc: cudnnFilterDescriptor_t,
        w: *const c_void,
        convDesc: cudnnConvolutionDescriptor_t,
        yDesc: cudnnTensorDescriptor_t,
        y: *mut c_void,
        requestedAlgoCount: c_int,
        returnedAlgoCount: *mut c_int,
        perfResults: *mut RawPerf,
        workSpace: *mut c_void,
        workSpaceSizeInBytes: usize,
    ) -> Code;
    pub(super) fn cudnnGetConvolutionBackwardDataAlgorithmMaxCount(
        handle: cudnnHandle_t,
        count: *mut c_int,
    ) -> Code;
    pub(super) fn cudnnGetConvolutionBackwardDataAlgorithm_v7(
        handle: cudnnHandle_t,
        filterDesc: cudnnFilterDescriptor_t,
        diffDesc: cudnnTensorDescriptor_t,
        convDesc: cudnnConvolutionDescriptor_t,
        gradDesc: cudnnTensorDescriptor_t,
        requestedAlgoCount: c_int,
        returnedAlgoCount: *mut c_int,
        perfResults: *mut RawPerf,
    ) -> Code;
    pub(super) fn cudnnGetConvolutionBackwardDataWorkspaceSize(
        handle: cudnnHandle_t,
        wDesc: cudnnFilterDescriptor_t,
        dyDesc: cudnnTensorDescriptor_t,
        convDesc: cudnnConvolutionDescriptor_t,
        dxDesc: cudnnTensorDescriptor_t,
        algo: Code,
        sizeInBytes: *mut usize,
    ) -> Code;
    pub(super) fn cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(
        handle: cudnnHandle_t,
        count: *mut c_int,
    ) -> Code;
    pub(super) fn cudnnGetConvolutionBackwardFilterAlgorithm_v7(
        handle: cudnnHandle_t,
        srcDesc: cudnnTensorDescriptor_t,
        diffDesc: cudnnTensorDescriptor_t,
        convDesc: cudnnConvolutionDescriptor_t,
        gradDesc: cudnnFilterDescriptor_t,
        requestedAlgoCount: c_int,
        returnedAlgoCount: *mut c_int,
        perfResults: *mut RawPerf,
    ) -> Code;
    pub(super) fn cudnnGetConvolutionBackwardFilterWorkspaceSize(
        handle: cudnnHandle_t,
        xDesc: cudnnTensorDescriptor_t,
        dyDesc: cudnnTensorDescriptor_t,
        convDesc: cudnnConvolutionDescriptor_t,
        gradDesc: cudnnFilterDescriptor_t,
        algo: Code,
        sizeInBytes: *mut usize,
    ) -> Code;
    pub(super) fn cudnnGetConvolutionForwardAlgorithmMaxCount(
        handle: cudnnHandle_t,
        count: *mut c_int,
    ) -> Code;
    pub(super) fn cudnnGetConvolutionForwardAlgorithm_v7(
        handle: cudnnHandle_t,
        srcDesc: cudnnTensorDescriptor_t,
        filterDesc: cudnnFilterDescriptor_t,
        convDesc: cudnnConvolutionDescriptor_t,
        destDesc: cudnnTensorDescriptor_t,
        requestedAlgoCount: c_int,
        returnedAlgoCount: *mut c_int,
        perfResults: *mut RawPerf,
    ) -> Code;
    pub(super) fn cudnnGetConvolutionForwardWorkspaceSize(
        handle: cudnnHandle_t,
        xDesc: cudnnTensorDescriptor_t,
        wDesc: cudnnFilterDescriptor_t,
        convDesc: cudnnConvolutionDescriptor_t,
        yDesc: cudnnTensorDescriptor_t,
        algo: Code,
        sizeInBytes: *mut usize,
    ) -> Code;
    pub(super) fn cudnnGetErrorString(status: Code) -> *const c_char;
    pub(super) fn cudnnSetActivationDescriptor(
        activationDesc: cudnnActivationDescriptor_t,
        mode: Code,
        reluNanOpt: Code,
        coef: f64,
    ) -> Code;
    pub(super) fn cudnnSetConvolution2dDescriptor(
        convDesc: cudnnConvolutionDescriptor_t,
        pad_h: c_int,
        pad_w: c_int,
        u: c_int,
        v: c_int,
        dilation_h: c_int,
        dilation_w: c_int,
        mode: Code,
        computeType: Code,
    ) -> Code;
    pub(super) fn cudnnSetConvolutionMathType(
        convDesc: cudnnConvolutionDescriptor_t,
        mathType: Code,
    ) -> Code;
    pub(super) fn cudnnSetFilter4dDescriptor(
        filterDesc: cudnnFilterDescriptor_t,
        dataType: Code,
        format: Code,
        k: c_int,
        c: c_int,
        h: c_int,
        w: c_int,
    ) -> Code;
    pub(super) fn cudnnSetStream(handle: cudnnHandle_t, streamId: cudaStream_t) -> Code;
    pub(super) fn cudnnSetTensor4dDescriptor(
        tensorDesc: cudnnTensorDescriptor_t,
        format: Code,
        dataType: Code,
        n: c_int,
        c: c_int,
        h: c_int,
        w: c_int,
    ) -> Code;
    pub(super) fn cudnnCreate(handle: *mut cudnnHandle_t) -> Code;
    pub(super) fn cudnnDestroy(handle: cudnnHandle_t) -> Code;
    pub(super) fn cudnnCreateTensorDescriptor(tensorDesc: *mut cudnnTensorDescriptor_t) -> Code;
    pub(super) fn cudnnDestroyTensorDescriptor(tensorDesc: cudnnTensorDescriptor_t) -> Code;
    pub(super) fn cudnnCreateFilterDescriptor(filterDesc: *mut cudnnFilterDescriptor_t) -> Code;
    pub(super) fn cudnnDestroyFilterDescriptor(filterDesc: cudnnFilterDescriptor_t) -> Code;
    pub(super) fn cudnnCreateConvolutionDescriptor(
        convDesc: *mut cudnnConvolutionDescriptor_t,
    ) -> Code;
    pub(super) fn cudnnDestroyConvolutionDescriptor(convDesc: cudnnConvolutionDescriptor_t)
        -> Code;
    pub(super) fn cudnnCreateActivationDescriptor(
        activationDesc: *mut cudnnActivationDescriptor_t,
    ) -> Code;
    pub(super) fn cudnnDestroyActivationDescriptor(
        activationDesc: cudnnActivationDescriptor_t,
    ) -> Code;
}

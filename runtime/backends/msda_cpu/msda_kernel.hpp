// Fused multi-scale deformable attention (MSDA) on the CPU: the computation of the TensorRT plugin
// MultiscaleDeformableAttnPlugin_TRT and of calibnet's ONNX reference body (GridSample, bilinear, zero padding,
// align_corners=0, summed with the attention weights), without materialising the sampled values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "openvino/core/type/bfloat16.hpp"

namespace calibnet {

//: the sizes of one call: value [N,S,M,D], locations [N,Lq,M,L,P,2], weights [N,Lq,M,L,P], output [N,Lq,M,D]
struct MsdaDims {
    int64_t N, S, M, D, Lq, L, P;
};

//: which implementation runs: chosen once per call from the CPU's features (and CALIBNET_MSDA_KERNEL)
enum class MsdaIsa { scalar, avx512 };

//: the implementation this process uses: avx512 when the CPU reports AVX-512F (x86-64 only), else scalar;
//: the environment variable CALIBNET_MSDA_KERNEL=scalar forces the portable one (tests, comparisons)
MsdaIsa msda_isa();
const char* msda_isa_name(MsdaIsa isa);

//: out[n,q,m,:] = sum over levels l and points p of weights[n,q,m,l,p] * bilinear sample of level l of value
//: (rows level_start[l] .. + H_l*W_l, an H_l x W_l image per head) at (x*W_l - 0.5, y*H_l - 0.5).
//: shapes[2*l], shapes[2*l+1] = H_l, W_l and level_start must be consistent with S (checked by the caller).
//: Runs in parallel over (n, q) with OpenVINO's threading.
template <typename T>
void msda_forward(const T* value, const int64_t* shapes, const int64_t* level_start, const T* locations,
                  const T* weights, T* out, const MsdaDims& d, MsdaIsa isa);

extern template void msda_forward<float>(const float*, const int64_t*, const int64_t*, const float*, const float*,
                                         float*, const MsdaDims&, MsdaIsa);
extern template void msda_forward<ov::bfloat16>(const ov::bfloat16*, const int64_t*, const int64_t*,
                                                const ov::bfloat16*, const ov::bfloat16*, ov::bfloat16*,
                                                const MsdaDims&, MsdaIsa);

}  // namespace calibnet

// The MSDA kernel. Work items are (batch, query, head), parallel with OpenVINO's threading. Per item,
// the bilinear taps of every level and point (GridSample's rule: pixel x * W - 0.5, zero padding) are weighted
// by the attention weight and the head's D channels are accumulated in FP32:
// - AVX-512 (CPUs with AVX-512F/BW/VL): 16 points at a time for the tap arithmetic, then 16-lane FMAs over D;
// - portable C++ elsewhere (or with CALIBNET_MSDA_KERNEL=scalar).
// Values, locations and weights are FP32 or BF16 tensors (BF16 widened on load, the output rounded to nearest
// even).
#include "msda_kernel.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#include "openvino/core/parallel.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#    include <immintrin.h>
#    define CALIBNET_X86 1
#endif

namespace calibnet {
namespace {

inline float to_float(float v) {
    return v;
}
inline float to_float(ov::bfloat16 v) {
    return static_cast<float>(v);
}

//: per level: its size and first row, as the kernels read them
struct Levels {
    std::vector<int64_t> H, W, start;
};

// ---- portable kernel -------------------------------------------------------------------------------------------

template <typename T>
void item_scalar(const T* base, const T* loc, const T* attn, const Levels& lv, const MsdaDims& d, T* out) {
    const int64_t row = d.M * d.D;
    float acc[32];
    for (int64_t c = 0; c < d.D; c += 32) {
        const int64_t len = std::min<int64_t>(32, d.D - c);
        std::fill(acc, acc + len, 0.0f);
        for (int64_t l = 0; l < d.L; ++l) {
            const int64_t H = lv.H[l], W = lv.W[l];
            const float fh = static_cast<float>(H), fw = static_cast<float>(W);
            for (int64_t p = 0; p < d.P; ++p) {
                const int64_t lp = l * d.P + p;
                const float x = to_float(loc[2 * lp]) * fw - 0.5f, y = to_float(loc[2 * lp + 1]) * fh - 0.5f;
                if (!(x > -1.0f && y > -1.0f && x < fw && y < fh))  // every corner outside (or NaN)
                    continue;
                const float a = to_float(attn[lp]);
                const float x0f = std::floor(x), y0f = std::floor(y);
                const int64_t x0 = static_cast<int64_t>(x0f), y0 = static_cast<int64_t>(y0f);
                const float lx = x - x0f, ly = y - y0f;
                const float wx[2] = {1.0f - lx, lx}, wy[2] = {1.0f - ly, ly};
                for (int iy = 0; iy < 2; ++iy) {
                    const int64_t yy = y0 + iy;
                    if (yy < 0 || yy >= H)
                        continue;
                    for (int ix = 0; ix < 2; ++ix) {
                        const int64_t xx = x0 + ix;
                        if (xx < 0 || xx >= W)
                            continue;
                        const float w = a * wy[iy] * wx[ix];
                        const T* src = base + (lv.start[l] + yy * W + xx) * row + c;
                        for (int64_t i = 0; i < len; ++i)
                            acc[i] += w * to_float(src[i]);
                    }
                }
            }
        }
        for (int64_t i = 0; i < len; ++i)
            out[c + i] = T(acc[i]);
    }
}

// ---- AVX-512 kernel --------------------------------------------------------------------------------------------

#ifdef CALIBNET_X86
#    define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

//: the level parameters of 16 consecutive (level, point) lanes
struct LaneGroup {
    alignas(64) float fw[16], fh[16];
    alignas(64) int32_t W[16], start[16];
    int count;  // valid lanes
};

inline __mmask16 lanes(int64_t len) {
    return len >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (len > 0 ? len : 0)) - 1u);
}

AVX512 inline __m512 load16(__mmask16 m, const float* src) {
    return _mm512_maskz_loadu_ps(m, src);
}

AVX512 inline __m512 load16(__mmask16 m, const ov::bfloat16* src) {
    const __m256i raw = _mm256_maskz_loadu_epi16(m, src);
    return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xFFFF, _mm512_cvtepu16_epi32(raw), 16));
}

//: lanes with 0 <= v <= limit (false for NaN)
AVX512 inline __mmask16 inside(__m512 v, __m512 limit) {
    return _mm512_mask_cmp_ps_mask(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GE_OQ), v, limit, _CMP_LE_OQ);
}

//: v clamped to [0, limit] as integers (NaN -> 0)
AVX512 inline __m512i index(__m512 v, __m512 limit) {
    return _mm512_cvttps_epi32(_mm512_min_ps(_mm512_max_ps(v, _mm512_setzero_ps()), limit));
}

//: the taps of one lane group: per corner (top-left, top-right, bottom-left, bottom-right) the element offset of
//: its row of value and its weight (attention x bilinear). A corner outside the level image gets weight 0 and
//: the offset of the nearest pixel inside it (so every load stays within value; GridSample's zero padding).
struct Taps {
    alignas(64) int32_t offset[4][16];
    alignas(64) float w[4][16];
};

template <typename T>
AVX512 void lane_taps(const T* loc, const T* attn, const LaneGroup& g, int32_t rowstride, Taps& t) {
    const __mmask16 m = lanes(g.count);
    // (x, y) pairs of 16 points -> x and y vectors
    const __m512 lo = load16(lanes(2 * g.count), loc), hi = load16(lanes(2 * g.count - 16), loc + 16);
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __m512 fw = _mm512_load_ps(g.fw), fh = _mm512_load_ps(g.fh), half = _mm512_set1_ps(0.5f);
    const __m512 x = _mm512_fmsub_ps(_mm512_permutex2var_ps(lo, even, hi), fw, half);
    const __m512 y = _mm512_fmsub_ps(_mm512_permutex2var_ps(lo, odd, hi), fh, half);
    const __m512 a = load16(m, attn);
    const __m512 one = _mm512_set1_ps(1.0f);
    // NaN or far-away coordinates: outside on every side (the compares below are then false)
    const __m512 x0 = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    const __m512 y0 = _mm512_roundscale_ps(y, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    const __m512 x1 = _mm512_add_ps(x0, one), y1 = _mm512_add_ps(y0, one);
    const __m512 lx = _mm512_sub_ps(x, x0), ly = _mm512_sub_ps(y, y0);
    const __m512 hx = _mm512_sub_ps(one, lx), hy = _mm512_sub_ps(one, ly);
    const __m512 wm1 = _mm512_sub_ps(fw, one), hm1 = _mm512_sub_ps(fh, one);
    const __mmask16 vx0 = inside(x0, wm1), vx1 = inside(x1, wm1), vy0 = inside(y0, hm1), vy1 = inside(y1, hm1);
    const __m512i ix0 = index(x0, wm1), ix1 = index(x1, wm1);
    const __m512i W = _mm512_load_si512(g.W), start = _mm512_load_si512(g.start), rs = _mm512_set1_epi32(rowstride);
    const __m512i top = _mm512_add_epi32(start, _mm512_mullo_epi32(index(y0, hm1), W));
    const __m512i bottom = _mm512_add_epi32(start, _mm512_mullo_epi32(index(y1, hm1), W));
    const __m512 ay0 = _mm512_mul_ps(a, hy), ay1 = _mm512_mul_ps(a, ly);
    _mm512_store_ps(t.w[0], _mm512_maskz_mul_ps(m & vy0 & vx0, ay0, hx));
    _mm512_store_ps(t.w[1], _mm512_maskz_mul_ps(m & vy0 & vx1, ay0, lx));
    _mm512_store_ps(t.w[2], _mm512_maskz_mul_ps(m & vy1 & vx0, ay1, hx));
    _mm512_store_ps(t.w[3], _mm512_maskz_mul_ps(m & vy1 & vx1, ay1, lx));
    _mm512_store_si512(t.offset[0], _mm512_mullo_epi32(_mm512_add_epi32(top, ix0), rs));
    _mm512_store_si512(t.offset[1], _mm512_mullo_epi32(_mm512_add_epi32(top, ix1), rs));
    _mm512_store_si512(t.offset[2], _mm512_mullo_epi32(_mm512_add_epi32(bottom, ix0), rs));
    _mm512_store_si512(t.offset[3], _mm512_mullo_epi32(_mm512_add_epi32(bottom, ix1), rs));
}

template <typename T, int ACC>
AVX512 void item_avx512(const T* base, const T* loc, const T* attn, const std::vector<LaneGroup>& groups,
                        const MsdaDims& d, T* out) {
    const int32_t rs = static_cast<int32_t>(d.M * d.D);  // row stride of value (the caller checked the range)
    alignas(64) float res[16 * ACC];
    for (int64_t c = 0; c < d.D; c += 16 * ACC) {
        __mmask16 m[ACC];
        __m512 acc[2][ACC];  // two sets (top and bottom corners): shorter FMA dependency chains
        for (int k = 0; k < ACC; ++k) {
            m[k] = lanes(d.D - c - 16 * k);
            acc[0][k] = acc[1][k] = _mm512_setzero_ps();
        }
        const T* col = base + c;
        for (size_t gi = 0; gi < groups.size(); ++gi) {
            Taps t;
            lane_taps(loc + 32 * gi, attn + 16 * gi, groups[gi], rs, t);
            for (int i = 0; i < groups[gi].count; ++i)
                for (int corner = 0; corner < 4; ++corner) {
                    const T* src = col + t.offset[corner][i];
                    const __m512 w = _mm512_set1_ps(t.w[corner][i]);
                    for (int k = 0; k < ACC; ++k)
                        acc[corner >> 1][k] = _mm512_fmadd_ps(w, load16(m[k], src + 16 * k), acc[corner >> 1][k]);
                }
        }
        for (int k = 0; k < ACC; ++k) {
            const __m512 sum = _mm512_add_ps(acc[0][k], acc[1][k]);
            if constexpr (std::is_same_v<T, float>)
                _mm512_mask_storeu_ps(out + c + 16 * k, m[k], sum);
            else
                _mm512_store_ps(res + 16 * k, sum);
        }
        if constexpr (!std::is_same_v<T, float>) {
            const int64_t len = std::min<int64_t>(16 * ACC, d.D - c);
            for (int64_t i = 0; i < len; ++i)  // round to nearest even, as ov::bfloat16 does
                out[c + i] = T(res[i]);
        }
    }
}

std::vector<LaneGroup> lane_groups(const Levels& lv, const MsdaDims& d) {
    const int64_t LP = d.L * d.P;
    std::vector<LaneGroup> groups(static_cast<size_t>((LP + 15) / 16));
    for (int64_t lp = 0; lp < LP; ++lp) {
        LaneGroup& g = groups[static_cast<size_t>(lp / 16)];
        const int64_t l = lp / d.P, i = lp % 16;
        g.fw[i] = static_cast<float>(lv.W[l]);
        g.fh[i] = static_cast<float>(lv.H[l]);
        g.W[i] = static_cast<int32_t>(lv.W[l]);
        g.start[i] = static_cast<int32_t>(lv.start[l]);
        g.count = static_cast<int>(i + 1);
    }
    for (LaneGroup& g : groups)
        for (int i = g.count; i < 16; ++i)
            g.fw[i] = g.fh[i] = 1.0f, g.W[i] = 1, g.start[i] = 0;
    return groups;
}

bool cpu_has_avx512() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}
#else
bool cpu_has_avx512() {
    return false;
}
#endif

}  // namespace

MsdaIsa msda_isa() {
    static const bool avx512 = cpu_has_avx512();
    const char* forced = std::getenv("CALIBNET_MSDA_KERNEL");
    if (forced != nullptr && std::strcmp(forced, "scalar") == 0)
        return MsdaIsa::scalar;
    return avx512 ? MsdaIsa::avx512 : MsdaIsa::scalar;
}

const char* msda_isa_name(MsdaIsa isa) {
    return isa == MsdaIsa::avx512 ? "avx512" : "scalar";
}

template <typename T>
void msda_forward(const T* value, const int64_t* shapes, const int64_t* level_start, const T* locations,
                  const T* weights, T* out, const MsdaDims& d, MsdaIsa isa) {
    Levels lv;
    for (int64_t l = 0; l < d.L; ++l) {
        lv.H.push_back(shapes[2 * l]);
        lv.W.push_back(shapes[2 * l + 1]);
        lv.start.push_back(level_start[l]);
    }
    const int64_t LP = d.L * d.P;
    // the AVX-512 path computes element offsets in 32 bits: larger values take the portable one
    const bool avx512 = isa == MsdaIsa::avx512 && d.S * d.M * d.D < (int64_t(1) << 31);
#ifdef CALIBNET_X86
    const std::vector<LaneGroup> groups = avx512 ? lane_groups(lv, d) : std::vector<LaneGroup>{};
#endif
    // item = (n, q, m) in memory order: locations and weights are read sequentially, and neighbouring queries
    // sample neighbouring rows of value
    ov::parallel_for(static_cast<size_t>(d.N * d.Lq * d.M), [&](size_t index) {
        const int64_t nqm = static_cast<int64_t>(index), m = nqm % d.M, n = nqm / (d.Lq * d.M);
        const T* base = value + (n * d.S * d.M + m) * d.D;
        const T* loc = locations + 2 * nqm * LP;
        const T* attn = weights + nqm * LP;
        T* o = out + nqm * d.D;
#ifdef CALIBNET_X86
        if (avx512) {
            if (d.D <= 32)
                item_avx512<T, 2>(base, loc, attn, groups, d, o);
            else
                item_avx512<T, 4>(base, loc, attn, groups, d, o);
            return;
        }
#endif
        item_scalar(base, loc, attn, lv, d, o);
    });
}

template void msda_forward<float>(const float*, const int64_t*, const int64_t*, const float*, const float*, float*,
                                  const MsdaDims&, MsdaIsa);
template void msda_forward<ov::bfloat16>(const ov::bfloat16*, const int64_t*, const int64_t*, const ov::bfloat16*,
                                         const ov::bfloat16*, ov::bfloat16*, const MsdaDims&, MsdaIsa);

}  // namespace calibnet

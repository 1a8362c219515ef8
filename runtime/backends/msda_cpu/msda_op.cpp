// Shape/type inference with the plugin's rules, the checks that need the values (level sizes against S and the
// start indices), and evaluate() -> the fused kernel.
#include "msda_op.hpp"

#include <string>
#include <vector>

#include "msda_kernel.hpp"

namespace calibnet {
namespace {

constexpr const char* kName = "MultiscaleDeformableAttnPlugin_TRT";
const char* const kInputs[] = {"value", "spatial_shapes", "level_start_index", "sampling_locations",
                               "attention_weights"};
constexpr int64_t kRanks[] = {4, 2, 1, 6, 5};

bool is_float_type(const ov::element::Type& t) {
    return t == ov::element::f32 || t == ov::element::bf16 || t.is_dynamic();
}

bool is_index_type(const ov::element::Type& t) {
    return t == ov::element::i32 || t == ov::element::i64 || t.is_dynamic();
}

std::vector<int64_t> to_int64(const ov::Tensor& t) {
    std::vector<int64_t> out(t.get_size());
    if (t.get_element_type() == ov::element::i32) {
        const int32_t* p = t.data<const int32_t>();
        for (size_t i = 0; i < out.size(); ++i)
            out[i] = p[i];
    } else {
        const int64_t* p = t.data<const int64_t>();
        for (size_t i = 0; i < out.size(); ++i)
            out[i] = p[i];
    }
    return out;
}

std::string dims(const ov::Shape& s) {
    std::string out = "[";
    for (size_t i = 0; i < s.size(); ++i)
        out += (i ? "," : "") + std::to_string(s[i]);
    return out + "]";
}

// The sizes of one call from the five input shapes; throws (ov::Exception) on any inconsistency.
MsdaDims checked_dims(const ov::TensorVector& in) {
    for (size_t i = 0; i < 5; ++i)
        if (static_cast<int64_t>(in[i].get_shape().size()) != kRanks[i])
            OPENVINO_THROW(kName, ": ", kInputs[i], " must have rank ", kRanks[i], ", got shape ",
                           dims(in[i].get_shape()));
    const ov::Shape &v = in[0].get_shape(), &ss = in[1].get_shape(), &ls = in[2].get_shape(),
                    &loc = in[3].get_shape(), &w = in[4].get_shape();
    const MsdaDims d{static_cast<int64_t>(v[0]),   static_cast<int64_t>(v[1]),   static_cast<int64_t>(v[2]),
                     static_cast<int64_t>(v[3]),   static_cast<int64_t>(loc[1]), static_cast<int64_t>(loc[3]),
                     static_cast<int64_t>(loc[4])};
    const bool ok = ss[0] == loc[3] && ss[1] == 2 && ls[0] == loc[3] && loc[0] == v[0] && loc[2] == v[2] &&
                    loc[5] == 2 && w[0] == loc[0] && w[1] == loc[1] && w[2] == loc[2] && w[3] == loc[3] &&
                    w[4] == loc[4];
    if (!ok)
        OPENVINO_THROW(kName, ": inconsistent input shapes: value ", dims(v), ", spatial_shapes ", dims(ss),
                       ", level_start_index ", dims(ls), ", sampling_locations ", dims(loc),
                       ", attention_weights ", dims(w), " (expected [N,S,M,D], [L,2], [L], [N,Lq,M,L,P,2], ",
                       "[N,Lq,M,L,P])");
    return d;
}

}  // namespace

MultiscaleDeformableAttn::MultiscaleDeformableAttn(const ov::OutputVector& inputs) : Op(inputs) {
    constructor_validate_and_infer_types();
}

void MultiscaleDeformableAttn::validate_and_infer_types() {
    NODE_VALIDATION_CHECK(this, get_input_size() == 5, kName, " takes 5 inputs (value, spatial_shapes, ",
                          "level_start_index, sampling_locations, attention_weights), got ", get_input_size());
    const auto type = get_input_element_type(0);
    NODE_VALIDATION_CHECK(this, is_float_type(type), kName, ": value must be f32 or bf16, got ", type);
    for (size_t i : {3, 4})
        NODE_VALIDATION_CHECK(this, get_input_element_type(i) == type || get_input_element_type(i).is_dynamic(),
                              kName, ": ", kInputs[i], " must have value's element type ", type, ", got ",
                              get_input_element_type(i));
    for (size_t i : {1, 2})
        NODE_VALIDATION_CHECK(this, is_index_type(get_input_element_type(i)), kName, ": ", kInputs[i],
                              " must be i32 or i64, got ", get_input_element_type(i));
    for (size_t i = 0; i < 5; ++i) {
        const auto& rank = get_input_partial_shape(i).rank();
        NODE_VALIDATION_CHECK(this, rank.compatible(kRanks[i]), kName, ": ", kInputs[i], " must have rank ",
                              kRanks[i], ", got ", get_input_partial_shape(i));
    }
    const auto &v = get_input_partial_shape(0), &ss = get_input_partial_shape(1),
               &ls = get_input_partial_shape(2), &loc = get_input_partial_shape(3),
               &w = get_input_partial_shape(4);
    if (v.rank().is_static() && loc.rank().is_static()) {
        NODE_VALIDATION_CHECK(this, v[0].compatible(loc[0]) && v[2].compatible(loc[2]), kName,
                              ": batch and heads of value ", v, " and sampling_locations ", loc, " differ");
        NODE_VALIDATION_CHECK(this, loc[5].compatible(2), kName, ": sampling_locations must end in (x, y), got ", loc);
    }
    if (ss.rank().is_static())
        NODE_VALIDATION_CHECK(this, ss[1].compatible(2), kName, ": spatial_shapes must be [L,2] (H, W), got ", ss);
    if (ss.rank().is_static() && ls.rank().is_static() && loc.rank().is_static())
        NODE_VALIDATION_CHECK(this, ss[0].compatible(loc[3]) && ls[0].compatible(loc[3]), kName,
                              ": the number of levels differs: spatial_shapes ", ss, ", level_start_index ", ls,
                              ", sampling_locations ", loc);
    if (loc.rank().is_static() && w.rank().is_static())
        for (size_t i = 0; i < 5; ++i)
            NODE_VALIDATION_CHECK(this, loc[i].compatible(w[i]), kName, ": attention_weights ", w,
                                  " does not match sampling_locations ", loc);
    ov::PartialShape out = ov::PartialShape::dynamic(4);
    if (loc.rank().is_static())
        out[0] = loc[0], out[1] = loc[1], out[2] = loc[2];
    if (v.rank().is_static())
        out[0] = v[0], out[2] = v[2], out[3] = v[3];
    set_output_type(0, type, out);
}

std::shared_ptr<ov::Node> MultiscaleDeformableAttn::clone_with_new_inputs(const ov::OutputVector& new_args) const {
    check_new_args_count(this, new_args);
    return std::make_shared<MultiscaleDeformableAttn>(new_args);
}

bool MultiscaleDeformableAttn::visit_attributes(ov::AttributeVisitor&) {
    return true;
}

bool MultiscaleDeformableAttn::has_evaluate() const {
    const auto t = get_input_element_type(0);
    return t == ov::element::f32 || t == ov::element::bf16;
}

bool MultiscaleDeformableAttn::evaluate(ov::TensorVector& outputs, const ov::TensorVector& inputs) const {
    if (inputs.size() != 5 || outputs.size() != 1)
        OPENVINO_THROW(kName, ": takes 5 inputs and gives 1 output");
    const auto type = inputs[0].get_element_type();
    if (!(type == ov::element::f32 || type == ov::element::bf16) || inputs[3].get_element_type() != type ||
        inputs[4].get_element_type() != type)
        OPENVINO_THROW(kName, ": value, sampling_locations and attention_weights must all be f32 or all bf16, got ",
                       type, ", ", inputs[3].get_element_type(), ", ", inputs[4].get_element_type());
    for (size_t i : {1, 2})
        if (!(inputs[i].get_element_type() == ov::element::i32 || inputs[i].get_element_type() == ov::element::i64))
            OPENVINO_THROW(kName, ": ", kInputs[i], " must be i32 or i64, got ", inputs[i].get_element_type());
    const MsdaDims d = checked_dims(inputs);
    const std::vector<int64_t> shapes = to_int64(inputs[1]), starts = to_int64(inputs[2]);
    int64_t total = 0;
    for (int64_t l = 0; l < d.L; ++l) {
        const int64_t H = shapes[2 * l], W = shapes[2 * l + 1];
        if (H < 1 || W < 1 || H > d.S || W > d.S)
            OPENVINO_THROW(kName, ": level ", l, " has spatial shape ", H, "x", W, " (value has S=", d.S, " rows)");
        if (starts[l] != total)
            OPENVINO_THROW(kName, ": level_start_index[", l, "] is ", starts[l], ", but the levels before it hold ",
                           total, " rows (spatial_shapes)");
        total += H * W;
    }
    if (total != d.S)
        OPENVINO_THROW(kName, ": spatial_shapes cover ", total, " rows (sum of H*W), but value has S=", d.S);
    outputs[0].set_shape(ov::Shape{static_cast<size_t>(d.N), static_cast<size_t>(d.Lq), static_cast<size_t>(d.M),
                                   static_cast<size_t>(d.D)});
    const MsdaIsa isa = msda_isa();
    if (type == ov::element::f32)
        msda_forward(inputs[0].data<const float>(), shapes.data(), starts.data(), inputs[3].data<const float>(),
                     inputs[4].data<const float>(), outputs[0].data<float>(), d, isa);
    else
        msda_forward(inputs[0].data<const ov::bfloat16>(), shapes.data(), starts.data(),
                     inputs[3].data<const ov::bfloat16>(), inputs[4].data<const ov::bfloat16>(),
                     outputs[0].data<ov::bfloat16>(), d, isa);
    return true;
}

}  // namespace calibnet

// The OpenVINO operation behind the TensorRT plugin node MultiscaleDeformableAttnPlugin_TRT (domain TRT):
// inputs value [N,S,M,D], spatial_shapes [L,2] (H, W), level_start_index [L], sampling_locations
// [N,Lq,M,L,P,2] (x, y in [0,1]), attention_weights [N,Lq,M,L,P]; output [N,Lq,M,D]. value, locations,
// weights and the output share one element type, f32 or bf16; spatial_shapes and level_start_index are i32
// or i64. No attributes (the ONNX node's plugin_version / plugin_namespace are TensorRT's concern).
#pragma once

#include <memory>

#include "openvino/op/op.hpp"

namespace calibnet {

class MultiscaleDeformableAttn : public ov::op::Op {
public:
    OPENVINO_OP("MultiscaleDeformableAttnPlugin_TRT", "calibnet");

    MultiscaleDeformableAttn() = default;
    explicit MultiscaleDeformableAttn(const ov::OutputVector& inputs);

    void validate_and_infer_types() override;
    std::shared_ptr<ov::Node> clone_with_new_inputs(const ov::OutputVector& new_args) const override;
    bool visit_attributes(ov::AttributeVisitor& visitor) override;
    bool evaluate(ov::TensorVector& outputs, const ov::TensorVector& inputs) const override;
    bool has_evaluate() const override;
};

}  // namespace calibnet

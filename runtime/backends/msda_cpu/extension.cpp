// One shared library, loaded with core.add_extension(path): the operation (for models built in memory and for
// IR files that hold it) and the ONNX frontend's conversion rule for the TensorRT plugin node (domain TRT).
#include <openvino/core/extension.hpp>
#include <openvino/core/op_extension.hpp>
#include <openvino/frontend/onnx/extension/conversion.hpp>

#include "msda_kernel.hpp"
#include "msda_op.hpp"

namespace {

ov::OutputVector convert_plugin_node(const ov::frontend::NodeContext& node) {
    if (node.get_input_size() != 5)
        OPENVINO_THROW("MultiscaleDeformableAttnPlugin_TRT takes 5 inputs (value, spatial_shapes, level_start_index, ",
                       "sampling_locations, attention_weights), got ", node.get_input_size());
    ov::OutputVector inputs;
    for (int i = 0; i < 5; ++i)
        inputs.push_back(node.get_input(i));
    return std::make_shared<calibnet::MultiscaleDeformableAttn>(inputs)->outputs();
}

}  // namespace

//: the kernel this process runs ("avx512" or "scalar"), for the Python side's report
extern "C" OPENVINO_CORE_EXPORTS const char* calibnet_msda_isa() {
    return calibnet::msda_isa_name(calibnet::msda_isa());
}

OPENVINO_CREATE_EXTENSIONS(std::vector<ov::Extension::Ptr>(
    {std::make_shared<ov::OpExtension<calibnet::MultiscaleDeformableAttn>>(),
     std::make_shared<ov::frontend::onnx::ConversionExtension>("MultiscaleDeformableAttnPlugin_TRT", "TRT",
                                                               convert_plugin_node)}));

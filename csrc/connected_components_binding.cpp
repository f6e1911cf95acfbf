// Python binding for the CUDA connected-components kernel in
// connected_components.cu (loaded on demand by sam2_plus/postprocess.py).

#include <torch/extension.h>

#include <vector>

namespace sam2_plus_cc {
std::vector<torch::Tensor> connected_components_cuda(torch::Tensor mask);
}  // namespace sam2_plus_cc

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("connected_components",
        &sam2_plus_cc::connected_components_cuda,
        "8-connected component labels and per-pixel component areas of a "
        "uint8 CUDA mask [N, C, H, W]; returns (labels, areas), both int32, "
        "0 on background pixels.",
        pybind11::arg("mask"));
}

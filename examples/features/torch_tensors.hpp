/// @file torch_tensors.hpp
/// @brief LibTorch helpers shared by the networks: owning tensors from a safetensors file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "safetensors.hpp"

namespace amq::features {

/// A copy of float32 tensor `name` of `file`, after checking its dtype and shape (amq::Error
/// names the file, the tensor and both shapes otherwise).
inline at::Tensor load_tensor(const SafetensorsFile& file, const std::string& name,
                              const std::vector<std::int64_t>& shape) {
  const float* values = file.f32_data(name, shape);
  // from_blob only borrows the file's buffer; the clone owns its memory.
  return at::from_blob(const_cast<float*>(values), shape, at::kFloat).clone();
}

}  // namespace amq::features

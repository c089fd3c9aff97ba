/// @file connected_components.hpp
/// @brief 8-connected components of a binary ground-truth mask (the defect regions of AU-PRO).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace amq::detail {

/// Labels the 8-connected components of the nonzero pixels of a row-major `width` × `height`
/// mask: `labels[p]` is 0 for a zero pixel and 1..count for the pixels of a component, numbered
/// in the order their first pixel appears in row-major order. Returns the count.
inline std::uint32_t label_components(const std::uint8_t* mask, std::size_t width,
                                      std::size_t height, std::vector<std::uint32_t>& labels) {
  labels.assign(width * height, 0);
  std::vector<std::size_t> stack;
  std::uint32_t count = 0;

  for (std::size_t seed = 0; seed < width * height; ++seed) {
    if (mask[seed] == 0 || labels[seed] != 0) continue;
    labels[seed] = ++count;
    stack.push_back(seed);

    // Depth-first flood fill over the 3 × 3 neighbourhood; an explicit stack keeps large
    // regions from exhausting the call stack.
    while (!stack.empty()) {
      const std::size_t p = stack.back();
      stack.pop_back();
      const std::size_t x = p % width;
      const std::size_t y = p / width;
      for (std::size_t ny = y == 0 ? 0 : y - 1; ny <= y + 1 && ny < height; ++ny) {
        for (std::size_t nx = x == 0 ? 0 : x - 1; nx <= x + 1 && nx < width; ++nx) {
          const std::size_t q = ny * width + nx;
          if (mask[q] != 0 && labels[q] == 0) {
            labels[q] = count;
            stack.push_back(q);
          }
        }
      }
    }
  }
  return count;
}

}  // namespace amq::detail

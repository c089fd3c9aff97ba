#include <doctest/doctest.h>

#include <vector>

#include "amq/score_map.hpp"

namespace {

// A 3 × 2 score map (width 3, height 2), row by row over y:
//   y = 0: 0.1 0.2 0.3
//   y = 1: 0.4 0.5 0.9
const std::vector<float> kMap = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.9f};

}  // namespace

TEST_CASE("upsampling by an integer factor repeats each cell") {
  const std::vector<float> up = amq::upsample_nearest(kMap.data(), 3, 2, 6, 4);
  const std::vector<float> expected = {
      0.1f, 0.1f, 0.2f, 0.2f, 0.3f, 0.3f,  //
      0.1f, 0.1f, 0.2f, 0.2f, 0.3f, 0.3f,  //
      0.4f, 0.4f, 0.5f, 0.5f, 0.9f, 0.9f,  //
      0.4f, 0.4f, 0.5f, 0.5f, 0.9f, 0.9f,
  };
  CHECK(up == expected);
}

TEST_CASE("upsampling by a fractional factor reads the cell under each pixel centre") {
  // Width 3 -> 4: centres at 0.5, 1.5, 2.5, 3.5 image pixels map to 0.375, 1.125, 1.875,
  // 2.625 map cells -> columns 0, 1, 1, 2. Height 2 -> 3: 0.333, 1.0, 1.667 -> rows 0, 1, 1.
  const std::vector<float> up = amq::upsample_nearest(kMap.data(), 3, 2, 4, 3);
  const std::vector<float> expected = {
      0.1f, 0.2f, 0.2f, 0.3f,  //
      0.4f, 0.5f, 0.5f, 0.9f,  //
      0.4f, 0.5f, 0.5f, 0.9f,
  };
  CHECK(up == expected);
}

TEST_CASE("upsampling to the same size is the identity") {
  CHECK(amq::upsample_nearest(kMap.data(), 3, 2, 3, 2) == kMap);
}

TEST_CASE("image score mean equals the mean of the upsampled map") {
  // At the map's own size: mean of the six cells.
  CHECK(amq::image_score(kMap.data(), 3, 2, amq::ImageScore::mean) ==
        doctest::Approx((0.1 + 0.2 + 0.3 + 0.4 + 0.5 + 0.9) / 6.0));

  // 4 × 3: columns weigh 1, 2, 1 and rows 1, 2 (see the fractional case above).
  const double by_hand = (1 * (0.1 + 2 * 0.2 + 0.3) + 2 * (0.4 + 2 * 0.5 + 0.9)) / 12.0;
  CHECK(amq::image_score(kMap.data(), 3, 2, amq::ImageScore::mean, 4, 3) ==
        doctest::Approx(by_hand));

  const std::vector<float> up = amq::upsample_nearest(kMap.data(), 3, 2, 7, 5);
  double sum = 0.0;
  for (float v : up) sum += v;
  CHECK(amq::image_score(kMap.data(), 3, 2, amq::ImageScore::mean, 7, 5) ==
        doctest::Approx(sum / up.size()));
}

TEST_CASE("image score max is the largest upsampled score") {
  CHECK(amq::image_score(kMap.data(), 3, 2, amq::ImageScore::max) == 0.9f);
  CHECK(amq::image_score(kMap.data(), 3, 2, amq::ImageScore::max, 224, 224) == 0.9f);
  // Shrunk to 1 × 1, the only image pixel reads cell (1, 1) = 0.5.
  CHECK(amq::image_score(kMap.data(), 3, 2, amq::ImageScore::max, 1, 1) == 0.5f);
}

TEST_CASE("bad sizes are refused") {
  CHECK_THROWS_AS(amq::upsample_nearest(kMap.data(), 3, 2, 0, 4), amq::Error);
  CHECK_THROWS_AS(amq::upsample_nearest(kMap.data(), 0, 2, 4, 4), amq::Error);
  CHECK_THROWS_AS(amq::upsample_nearest(nullptr, 3, 2, 4, 4), amq::Error);
  CHECK_THROWS_WITH_AS(amq::image_score(kMap.data(), 3, 2, amq::ImageScore::mean, 5, 0),
                       doctest::Contains("5 x 0"), amq::Error);
}

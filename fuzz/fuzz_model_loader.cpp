// libFuzzer target: AmqScorer::from_bytes on arbitrary bytes, for each encoder and filter policy
// a model file can name. The first input byte chooses the mode: even = the bytes as they are
// (the envelope checks: magic, version, checksum), odd = the rest with its trailing checksum
// recomputed, so that mutations reach the field checks behind the checksum.
//
// Any crash, sanitizer report, exception other than amq::Error, or a loaded model that does
// not save back to the same bytes or scores outside [0, 1] is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "amq/amq.hpp"

namespace {

void reseal(std::vector<std::uint8_t>& bytes) {
  if (bytes.size() < 8) return;
  const std::uint64_t sum = amq::fnv1a64(bytes.data(), bytes.size() - 8);
  for (int i = 0; i < 8; ++i)
    bytes[bytes.size() - 8 + i] = static_cast<std::uint8_t>(sum >> (8 * i));
}

template <class Scorer>
void load(const std::vector<std::uint8_t>& bytes) {
  try {
    const Scorer scorer = Scorer::from_bytes(bytes.data(), bytes.size(), "fuzz input");
    if (scorer.to_bytes() != bytes) std::abort();  // a loaded model saves back unchanged

    // Score one all-zero map of the model's size, when that size is small.
    const std::size_t w = scorer.map_width();
    const std::size_t h = scorer.map_height();
    const std::size_t d = scorer.encoder().dim();
    if (w > 64 || h > 64 || d > 256) return;
    const std::vector<float> map(w * h * d, 0.0f);
    for (const float s : scorer.score(amq::FeatureMap{map.data(), w, h, d})) {
      if (!(s >= 0.0f && s <= 1.0f)) std::abort();
    }
    const float image =
        scorer.image_score(scorer.score(amq::FeatureMap{map.data(), w, h, d}).data());
    if (!(image >= 0.0f && image <= 1.0f)) std::abort();
  } catch (const amq::Error&) {
    // refused with a message: the expected outcome for almost every input
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::vector<std::uint8_t> bytes(data + 1, data + size);
  if (data[0] & 1) reseal(bytes);
  load<amq::AmqScorer<>>(bytes);
  load<amq::AmqScorer<amq::LshEncoder<>, amq::BloomFilter<amq::SplitBlockBloom>>>(bytes);
  load<amq::AmqScorer<amq::LshEncoder<amq::StructuredProjection>>>(bytes);
  return 0;
}

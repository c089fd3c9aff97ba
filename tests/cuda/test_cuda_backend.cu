// The CUDA backend against the CPU library: same parameters and seed give the same filter
// words, the same codes except within rounding of a bucket edge, and the same scores from the
// same codes. Cases that need a GPU are skipped (and say so) when no device is present; the
// error-reporting cases run everywhere.
#include <doctest/doctest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "amq/amq_scorer.hpp"
#include "amq/cuda/amq_scorer.cuh"
#include "amq/cuda/bloom_filter.cuh"
#include "amq/cuda/distinct_keys.cuh"
#include "amq/cuda/lsh_encoder.cuh"
#include "amq/random.hpp"

namespace {

const bool has_gpu = amq::cuda::device_available();

std::vector<std::uint64_t> random_keys(std::size_t n, std::uint64_t seed) {
  amq::Random random(seed);
  std::vector<std::uint64_t> keys(n);
  for (auto& key : keys) key = random.next_u64();
  return keys;
}

std::vector<float> gaussian_features(std::size_t n, std::uint64_t seed, float scale = 1.0f) {
  amq::Random random(seed);
  std::vector<float> values(n);
  for (auto& v : values) v = scale * static_cast<float>(random.gaussian());
  return values;
}

template <class Call>
std::string error_of(Call&& call) {
  try {
    call();
  } catch (const amq::Error& error) {
    return error.what();
  }
  return "";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

template <class Policy>
void check_filter_equality(const amq::BloomParams& params) {
  const std::vector<std::uint64_t> keys = random_keys(200000, 5);
  amq::BloomFilter<Policy> host(params);
  host.add(keys.data(), keys.size());
  amq::cuda::BloomFilter<Policy> device(params);
  device.add(keys.data(), keys.size());

  CHECK(device.params() == host.params());
  const std::vector<std::uint32_t> words = device.host_words();
  REQUIRE(words.size() == host.words().size());
  CHECK(std::equal(words.begin(), words.end(), host.words().begin()));

  // Queries: the inserted keys (no false negatives) and fresh keys (equal answers).
  const std::vector<std::uint64_t> fresh = random_keys(100000, 6);
  CHECK(device.count(keys.data(), keys.size()) == keys.size());
  std::vector<std::uint8_t> host_found(fresh.size()), device_found(fresh.size());
  host.contains(fresh.data(), fresh.size(), host_found.data());
  device.contains(fresh.data(), fresh.size(), device_found.data());
  CHECK(host_found == device_found);
  CHECK(device.count(fresh.data(), fresh.size()) == host.count(fresh.data(), fresh.size()));

  // A copy of the host filter answers as the host filter.
  const amq::cuda::BloomFilter<Policy> copy(host);
  CHECK(copy.host_words() == words);
  const amq::BloomFilter<Policy> back = device.to_host();
  CHECK(std::equal(back.words().begin(), back.words().end(), host.words().begin()));
}

// γ_D = D·u / (1 − D·u), u = 2^-24: the bound on the relative error of a float dot product.
double gamma(std::size_t d) {
  const double du = static_cast<double>(d) * 0x1.0p-24;
  return du / (1.0 - du);
}

struct CodeComparison {
  std::size_t compared = 0;
  std::size_t differing = 0;          // GPU code != CPU code
  std::size_t unexplained = 0;        // differing by more than one, or far from a bucket edge
  std::size_t projection_beyond = 0;  // |GPU w·x − exact w·x| > γ_D Σ|w x|
};

// Compares GPU codes with the CPU's. A difference is explained when it is one bucket and the
// exact projection lies within rounding (the dot-product bound plus the add and divide) of
// the edge between the two buckets.
CodeComparison compare_codes(const amq::LshEncoder<>& host, amq::cuda::LshEncoder& device,
                             const std::vector<float>& features, std::size_t pixels) {
  const std::size_t d = host.dim(), g = host.hashes();
  const amq::MatrixView<const float> matrix{features.data(), pixels, d};
  const std::vector<std::int32_t> cpu = host.encode(matrix);
  const std::vector<std::int32_t> gpu = device.encode(matrix);
  const std::vector<float> projected = device.project(matrix);
  const float width = host.params().bucket_width;

  CodeComparison result;
  for (std::size_t p = 0; p < pixels; ++p) {
    const float* x = features.data() + p * d;
    for (std::size_t k = 0; k < g; ++k) {
      const float* w = host.directions().data() + k * d;
      double exact = 0.0, magnitude = 0.0;
      for (std::size_t i = 0; i < d; ++i) {
        exact += static_cast<double>(w[i]) * x[i];
        magnitude += std::fabs(static_cast<double>(w[i]) * x[i]);
      }
      const double dot_bound = gamma(d) * magnitude;
      const std::size_t i = p * g + k;
      result.projection_beyond += std::fabs(projected[i] - exact) > dot_bound;
      ++result.compared;
      if (gpu[i] == cpu[i]) continue;
      ++result.differing;
      const double shifted = exact + host.offsets()[k];
      const double edge = static_cast<double>(std::max(gpu[i], cpu[i])) * width;
      const double tolerance =
          dot_bound + 8.0 * 0x1.0p-24 * (std::fabs(shifted) + std::fabs(edge) + width);
      result.unexplained += std::abs(static_cast<long long>(gpu[i]) - cpu[i]) != 1 ||
                            std::fabs(shifted - edge) > tolerance;
    }
  }
  return result;
}

using SplitBlockScorer = amq::AmqScorer<amq::LshEncoder<>, amq::BloomFilter<amq::SplitBlockBloom>>;

constexpr std::size_t kWidth = 8, kHeight = 7, kDim = 64, kHashes = 512;

template <class HostScorer>
HostScorer trained_scorer(std::vector<std::vector<float>>& storage) {
  amq::ScorerParams params;
  params.lsh = {kDim, kHashes, 4.0f, 17};
  params.sizing = amq::SizingRule::target_fpr;
  params.target_fpr = 1e-4;
  HostScorer scorer(params);
  std::vector<amq::FeatureMap> maps;
  for (std::uint64_t i = 0; i < 6; ++i) {
    storage.push_back(gaussian_features(kWidth * kHeight * kDim, 50 + i));
    maps.push_back({storage.back().data(), kWidth, kHeight, kDim});
  }
  scorer.fit(maps);
  return scorer;
}

template <class Policy>
void check_scores() {
  using HostScorer = amq::AmqScorer<amq::LshEncoder<>, amq::BloomFilter<Policy>>;
  std::vector<std::vector<float>> storage;
  const HostScorer host = trained_scorer<HostScorer>(storage);
  amq::cuda::AmqScorer<Policy> device(host);
  amq::cuda::LshEncoder& encoder = device.encoder();

  // Normal maps (low scores) and new maps (high scores), so both ends are compared.
  for (std::uint64_t i = 0; i < 3; ++i) {
    storage.push_back(gaussian_features(kWidth * kHeight * kDim, 900 + i));
  }
  std::vector<amq::FeatureMap> maps;
  for (const auto& values : storage) maps.push_back({values.data(), kWidth, kHeight, kDim});
  std::vector<float> batch(maps.size() * kWidth * kHeight);
  device.score_batch(maps.data(), maps.size(), batch.data());

  std::size_t equal_code_pixels = 0, pixels_total = 0, batch_equal = 0;
  for (std::size_t m = 0; m < maps.size(); ++m) {
    const std::vector<float> cpu = host.score(maps[m]);
    const std::vector<float> gpu = device.score(maps[m]);
    const std::vector<std::int32_t> cpu_codes = host.encoder().encode(maps[m].matrix());
    const std::vector<std::int32_t> gpu_codes = encoder.encode(maps[m].matrix());
    for (std::size_t p = 0; p < cpu.size(); ++p) {
      CAPTURE(m);
      CAPTURE(p);
      // The batch goes through a GEMM of another shape, which cuBLAS may sum in another
      // order: a few codes near bucket edges may flip.
      batch_equal += gpu[p] == batch[m * cpu.size() + p];
      CHECK(std::fabs(gpu[p] - batch[m * cpu.size() + p]) <= 4.0f / kHashes);
      std::size_t differing = 0;
      for (std::size_t k = 0; k < kHashes; ++k) {
        differing += cpu_codes[p * kHashes + k] != gpu_codes[p * kHashes + k];
      }
      ++pixels_total;
      if (differing == 0) {
        ++equal_code_pixels;
        CHECK(gpu[p] == cpu[p]);  // same codes, same filter: the same score, bit for bit
      } else {
        CHECK(std::fabs(gpu[p] - cpu[p]) <= static_cast<float>(differing) / kHashes + 1e-6f);
      }
    }
  }
  // Codes differ only near bucket edges: nearly every pixel has all its codes equal.
  CHECK(equal_code_pixels >= pixels_total * 95 / 100);
  CHECK(batch_equal >= pixels_total * 95 / 100);
}

}  // namespace

TEST_CASE("CUDA device") {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  (void)cudaGetLastError();
  if (has_gpu) {
    int device = 0;
    cudaDeviceProp properties{};
    REQUIRE(cudaGetDevice(&device) == cudaSuccess);
    REQUIRE(cudaGetDeviceProperties(&properties, device) == cudaSuccess);
    MESSAGE("CUDA device " << device << ": " << properties.name << ", compute capability "
                           << properties.major << '.' << properties.minor);
  } else {
    MESSAGE("no CUDA device (" << std::string(cudaGetErrorName(status)) << ": "
                               << std::string(cudaGetErrorString(status))
                               << "): the test cases that need a GPU are skipped; only the "
                                  "error reporting of the CUDA backend is tested here");
  }
  CHECK(has_gpu == (status == cudaSuccess && count > 0));
  // scripts/gpu-check.sh sets AMQ_REQUIRE_GPU on a GPU machine: skipping there is a failure
  // (for example a driver older than the CUDA runtime).
  if (std::getenv("AMQ_REQUIRE_GPU") != nullptr) REQUIRE(has_gpu);
}

TEST_CASE("failed CUDA and cuBLAS calls become amq::Error with the call and the error name") {
  const std::string cuda = error_of([] { AMQ_CUDA_CHECK(cudaErrorInvalidValue); });
  CHECK(contains(cuda, "cudaErrorInvalidValue"));
  CHECK(contains(cuda, "test_cuda_backend.cu"));
  const std::string cublas = error_of([] { AMQ_CUBLAS_CHECK(CUBLAS_STATUS_INVALID_VALUE); });
  CHECK(contains(cublas, "CUBLAS_STATUS_INVALID_VALUE"));
  CHECK(error_of([] { AMQ_CUDA_CHECK(cudaSuccess); }).empty());
}

TEST_CASE("without a device, the CUDA classes throw amq::Error" * doctest::skip(has_gpu)) {
  const std::string message = error_of([] { amq::cuda::LshEncoder encoder({16, 32, 1.0f, 0}); });
  CHECK(contains(message, "amq::cuda::LshEncoder needs a CUDA device"));
  CHECK(contains(error_of([] {
                   amq::cuda::BloomFilter<> filter({1024, 3, 0});
                 }),
                 "amq::cuda::BloomFilter needs a CUDA device"));
  CHECK(contains(error_of([] { amq::cuda::DistinctKeys keys; }), "needs a CUDA device"));
  CHECK(amq::cuda::memory_stats().current_bytes == 0);
}

TEST_CASE("device buffers: copies, bad sizes and memory accounting" * doctest::skip(!has_gpu)) {
  amq::cuda::reset_peak_memory();
  const std::size_t before = amq::cuda::memory_stats().current_bytes;
  {
    amq::cuda::DeviceBuffer<int> buffer(1000);
    std::vector<int> values(1000), back(1000, 0);
    for (int i = 0; i < 1000; ++i) values[i] = i * 7 - 3;
    buffer.copy_from_host(values.data(), values.size());
    buffer.copy_to_host(back.data(), back.size());
    CHECK(back == values);
    CHECK(amq::cuda::memory_stats().current_bytes == before + 4000);
    CHECK(contains(error_of([&] { buffer.copy_to_host(back.data(), 1001); }), "1001"));
    amq::cuda::DeviceBuffer<int> moved(std::move(buffer));
    CHECK(buffer.empty());
    CHECK(moved.size() == 1000);
  }
  CHECK(amq::cuda::memory_stats().current_bytes == before);
  CHECK(amq::cuda::memory_stats().peak_bytes >= before + 4000);
  const std::string huge =
      error_of([] { amq::cuda::DeviceBuffer<char> buffer(std::size_t{1} << 60); });
  CHECK(contains(huge, "cannot allocate"));
}

TEST_CASE("split-block filter: identical words and answers on CPU and GPU" *
          doctest::skip(!has_gpu)) {
  check_filter_equality<amq::SplitBlockBloom>({std::uint64_t{1} << 22, 8, 9});
}

TEST_CASE("classic filter: identical words and answers on CPU and GPU" * doctest::skip(!has_gpu)) {
  check_filter_equality<amq::ClassicBloom>({4000037, 6, 9});
  check_filter_equality<amq::ClassicBloom>({std::uint64_t{1} << 21, 1, 2});
}

TEST_CASE("filter merge on the GPU equals the CPU's" * doctest::skip(!has_gpu)) {
  const amq::BloomParams params{std::uint64_t{1} << 20, 8, 4};
  const std::vector<std::uint64_t> a = random_keys(30000, 1), b = random_keys(30000, 2);
  amq::BloomFilter<amq::SplitBlockBloom> host_a(params), host_b(params);
  host_a.add(a.data(), a.size());
  host_b.add(b.data(), b.size());
  amq::cuda::BloomFilter<amq::SplitBlockBloom> device_a(host_a), device_b(host_b);
  host_a.merge(host_b);
  amq::cuda::Stream stream;
  device_a.merge_async(device_b, stream.get());
  stream.synchronize();
  const std::vector<std::uint32_t> words = device_a.host_words();
  CHECK(std::equal(words.begin(), words.end(), host_a.words().begin()));
  const amq::cuda::BloomFilter<amq::SplitBlockBloom> other({std::uint64_t{1} << 21, 8, 4});
  CHECK(contains(error_of([&] { device_a.merge_async(other, stream.get()); }), "different"));
}

TEST_CASE("GPU codes equal CPU codes except within rounding of a bucket edge" *
          doctest::skip(!has_gpu)) {
  struct Case {
    std::size_t dim, hashes, pixels;
    float bucket_width, feature_scale;
  };
  for (const Case c : {Case{288, 512, 300, 1.0f, 1.0f}, Case{3584, 256, 100, 2.0f, 0.5f},
                       Case{37, 100, 257, 0.05f, 1.0f}}) {
    CAPTURE(c.dim);
    const amq::LshEncoder<> host({c.dim, c.hashes, c.bucket_width, 99});
    amq::cuda::LshEncoder device(host);
    const std::vector<float> features = gaussian_features(c.pixels * c.dim, c.dim, c.feature_scale);
    const CodeComparison result = compare_codes(host, device, features, c.pixels);
    MESSAGE("D = " << c.dim << ": " << result.differing << " of " << result.compared
                   << " codes differ from the CPU's");
    CHECK(result.unexplained == 0);
    CHECK(result.projection_beyond == 0);
    CHECK(result.differing <= result.compared / 1000);
  }
}

TEST_CASE("a code outside int32 or a non-finite feature is an amq::Error, not a trap" *
          doctest::skip(!has_gpu)) {
  const amq::LshEncoder<> host({16, 64, 1e-6f, 1});
  amq::cuda::LshEncoder device(host);
  std::vector<float> features = gaussian_features(10 * 16, 3, 1e4f);
  const amq::MatrixView<const float> matrix{features.data(), 10, 16};
  CHECK(contains(error_of([&] { device.encode(matrix); }), "outside int32"));

  const amq::LshEncoder<> sane_host({16, 64, 1.0f, 1});
  amq::cuda::LshEncoder sane(sane_host);
  features = gaussian_features(10 * 16, 3);
  features[37] = std::numeric_limits<float>::quiet_NaN();
  CHECK(contains(error_of([&] { sane.encode(matrix); }), "outside int32"));
  // The status is cleared by the report: the next call with finite features succeeds.
  features[37] = 0.5f;
  CHECK(error_of([&] { sane.encode(matrix); }).empty());
}

TEST_CASE("split-block scorer: GPU scores equal CPU scores where the codes are equal" *
          doctest::skip(!has_gpu)) {
  check_scores<amq::SplitBlockBloom>();
}

TEST_CASE("classic scorer: GPU scores equal CPU scores where the codes are equal" *
          doctest::skip(!has_gpu)) {
  check_scores<amq::ClassicBloom>();
}

TEST_CASE("structured projection: GPU projections, codes and scores equal the CPU's bit for bit" *
          doctest::skip(!has_gpu)) {
  constexpr std::size_t hashes = 1000;  // D = 448: one full and one truncated block of 512
  for (const std::size_t dim : {std::size_t{37}, std::size_t{448}, std::size_t{3584}}) {
    CAPTURE(dim);
    const amq::LshEncoder<amq::StructuredProjection> host({dim, hashes, 0.5f, 5});
    amq::cuda::LshEncoder device(host);
    CHECK(device.structured());
    const std::size_t pixels = 200;
    const std::vector<float> features = gaussian_features(pixels * dim, dim);
    const amq::MatrixView<const float> matrix{features.data(), pixels, dim};
    std::vector<float> cpu(pixels * hashes);
    host.projection().project(matrix, {cpu.data(), pixels, hashes});
    const std::vector<float> gpu = device.project(matrix);
    REQUIRE(gpu.size() == cpu.size());
    CHECK(std::memcmp(gpu.data(), cpu.data(), cpu.size() * sizeof(float)) == 0);
    CHECK(device.encode(matrix) == host.encode(matrix));
  }

  using HostScorer = amq::AmqScorer<amq::LshEncoder<amq::StructuredProjection>,
                                    amq::BloomFilter<amq::SplitBlockBloom>>;
  std::vector<std::vector<float>> storage;
  const HostScorer host = trained_scorer<HostScorer>(storage);
  amq::cuda::AmqScorer<amq::SplitBlockBloom, amq::StructuredProjection> device(host);
  storage.push_back(gaussian_features(kWidth * kHeight * kDim, 901));
  for (const auto& values : storage) {
    const amq::FeatureMap map{values.data(), kWidth, kHeight, kDim};
    CHECK(device.score(map) == host.score(map));
  }
}

TEST_CASE("training on the GPU sets the bits of the GPU's keys" * doctest::skip(!has_gpu)) {
  const amq::LshEncoder<> host_encoder({kDim, kHashes, 4.0f, 23});
  const amq::BloomParams params{std::uint64_t{1} << 20, 8, 5};
  amq::cuda::AmqScorer<amq::SplitBlockBloom> device(host_encoder, params, kWidth, kHeight);
  amq::BloomFilter<amq::SplitBlockBloom> expected(params);
  for (std::uint64_t i = 0; i < 3; ++i) {
    const std::vector<float> values = gaussian_features(kWidth * kHeight * kDim, 70 + i);
    const amq::FeatureMap map{values.data(), kWidth, kHeight, kDim};
    device.add(map);
    const std::vector<std::int32_t> codes = device.encoder().encode(map.matrix());
    std::vector<std::uint64_t> keys(codes.size());
    for (std::size_t j = 0; j < codes.size(); ++j) {
      keys[j] = amq::make_key(static_cast<std::uint32_t>(j % kHashes), codes[j]);
    }
    expected.add(keys.data(), keys.size());
  }
  const std::vector<std::uint32_t> words = device.filter().host_words();
  CHECK(std::equal(words.begin(), words.end(), expected.words().begin()));
  CHECK(expected.fill() > 0.0);
}

TEST_CASE("_async twins on a stream give the results of the plain calls" *
          doctest::skip(!has_gpu)) {
  std::vector<std::vector<float>> storage;
  const SplitBlockScorer host = trained_scorer<SplitBlockScorer>(storage);
  amq::cuda::AmqScorer<amq::SplitBlockBloom> device(host);
  const std::size_t values = kWidth * kHeight * kDim, pixels = kWidth * kHeight;

  // One map per call, as the plain calls below: the same GEMM shape, hence the same sums.
  amq::cuda::Stream stream;
  amq::cuda::DeviceBuffer<float> features(values);
  amq::cuda::DeviceBuffer<float> scores(pixels);
  amq::cuda::DeviceBuffer<std::int32_t> codes(pixels * kHashes);
  features.copy_from_host_async(storage[1].data(), values, stream.get());
  device.score_async(features.data(), 1, scores.data(), stream.get());
  device.encoder().encode_async(features.data(), pixels, codes.data(), stream.get());
  device.check_async_errors(stream.get());
  device.encoder().check_async_errors(stream.get());

  std::vector<float> async_scores(pixels);
  scores.copy_to_host(async_scores.data(), async_scores.size());
  std::vector<std::int32_t> async_codes(pixels * kHashes);
  codes.copy_to_host(async_codes.data(), async_codes.size());
  CHECK(async_scores == device.score(amq::FeatureMap{storage[1].data(), kWidth, kHeight, kDim}));
  CHECK(async_codes == device.encoder().encode({storage[1].data(), pixels, kDim}));
}

TEST_CASE("distinct keys on the GPU: the count and the keys of a host sort + unique" *
          doctest::skip(!has_gpu)) {
  amq::cuda::DistinctKeys set;
  std::vector<std::uint64_t> all;
  for (std::uint64_t batch = 0; batch < 3; ++batch) {
    // Few distinct values, many repeats within and across batches.
    std::vector<std::uint64_t> keys = random_keys(50000, batch);
    for (auto& key : keys) key %= 20000 + batch * 5000;
    set.insert(keys);
    all.insert(all.end(), keys.begin(), keys.end());
  }
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  CHECK(set.size() == all.size());
  CHECK(set.host_keys() == all);
}

/// @file report.hpp
/// @brief What `amq test` measures and prints: per-defect and overall metrics (image AUROC,
/// pixel AUROC exact and by the paper's eq. 7, AU-PRO up to 30% FPR), time per stage, memory,
/// and the verdicts at the stored threshold; as a table and as JSON.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace amq::cli {

/// Milliseconds spent in each stage of scoring, summed over images.
struct StageTimes {
  double load_ms = 0.0;      ///< Reading and decoding the image file.
  double backbone_ms = 0.0;  ///< Resizing and normalising the image and running the network.
  double encode_ms = 0.0;    ///< LSH codes of every feature pixel (AMQ only).
  double query_ms = 0.0;     ///< Filter probes and pixel scores, or the kNN search.
  double upsample_ms = 0.0;  ///< Score map to image size, image score.
  double encode_cpu_ms = 0.0;  ///< encode_ms as CPU time of the process (all threads).
  double query_cpu_ms = 0.0;   ///< query_ms as CPU time of the process (all threads).

  /// The sum of all stages.
  double total_ms() const { return load_ms + backbone_ms + encode_ms + query_ms + upsample_ms; }
};

/// The outcome of one test image.
struct ImageResult {
  std::string path;          ///< The image file.
  std::string defect;        ///< Its defect type ("good" when defect-free).
  float score = 0.0f;        ///< Its image score.
  bool anomalous = false;    ///< Image score above the stored threshold.
};

/// The full-resolution score maps and masks of all test images, one after another, so that the
/// whole test set is evaluated without another copy.
struct PixelData {
  std::vector<float> scores;         ///< Upsampled scores, image after image, row-major.
  std::vector<std::uint8_t> labels;  ///< Mask values (0 or 1) in the same order.
  std::vector<std::size_t> offsets;  ///< Where each image starts; one entry per image.
  std::vector<std::size_t> widths;   ///< Each image's width.
  std::vector<std::size_t> heights;  ///< Each image's height.

  /// Appends one image's score map and mask (both width × height).
  void append(const std::vector<float>& map, const std::vector<std::uint8_t>& mask,
              std::size_t width, std::size_t height);
};

/// The metrics of one group of test images. A metric that the group cannot define (one class
/// only) is empty.
struct MetricRow {
  std::string group;                      ///< A defect type, or "overall".
  std::size_t images = 0;                 ///< Images in the group.
  std::size_t defective = 0;              ///< Of them, defective.
  std::optional<double> image_auroc;      ///< Exact ROC AUC of image scores.
  std::optional<double> pixel_auroc;      ///< Exact ROC AUC of all pixels.
  std::optional<double> pixel_auroc_eq7;  ///< Pixel ROC AUC over 100 thresholds (eq. 7).
  std::optional<double> au_pro;           ///< AU-PRO up to FPR 0.3, normalised.
};

/// Metrics for each defect type (its images together with the defect-free ones, as MVTec AD
/// results per defect are usually given) and for all images ("overall", the last row).
std::vector<MetricRow> evaluate(const std::vector<ImageResult>& images, const PixelData& pixels);

/// Everything `amq test` reports.
struct TestReport {
  std::string model;                ///< Model file.
  std::string data;                 ///< Data folder.
  std::string features;             ///< Feature source description.
  std::string method;               ///< The method and its search parameters (one line).
  bool knn = false;                 ///< A kNN model: the query is a search of an index.
  std::vector<MetricRow> rows;      ///< From evaluate().
  std::vector<ImageResult> images;  ///< Per-image scores and verdicts.
  StageTimes times;                 ///< Summed over images.
  double wall_ms = 0.0;             ///< Scoring loop, all stages, wall clock.
  double evaluation_ms = 0.0;       ///< Computing the metrics.
  std::size_t peak_rss_scoring = 0; ///< Peak resident bytes before the metrics.
  std::size_t peak_rss = 0;         ///< Peak resident bytes at the end.
  std::size_t model_bytes = 0;      ///< Model file size.
  std::size_t structure_bytes = 0;  ///< Bloom filter or kNN index size within it.
  float threshold = 0.0f;           ///< Image-score threshold stored with the model.
};

/// Prints the metrics table, the time per stage and the resources.
void print_report(std::ostream& out, const TestReport& report);

/// The report as JSON (metrics as numbers in [0, 1], or null when undefined).
nlohmann::json report_json(const TestReport& report);

}  // namespace amq::cli

#include "report.hpp"

#include <algorithm>
#include <cstdio>
#include <ostream>

#include "amq/error.hpp"
#include "amq/metrics.hpp"
#include "dataset.hpp"
#include "resources.hpp"

namespace amq::cli {
namespace {

/// Pixel metrics of the images `members` (indices into `pixels`); the whole buffer is used in
/// place when every image is a member.
void pixel_metrics(const PixelData& pixels, const std::vector<std::size_t>& members,
                   MetricRow& row) {
  std::vector<ScoreMapView> maps;
  std::size_t total = 0;
  for (const std::size_t i : members) {
    const std::size_t size = pixels.widths[i] * pixels.heights[i];
    maps.push_back({pixels.scores.data() + pixels.offsets[i],
                    pixels.labels.data() + pixels.offsets[i], pixels.widths[i], pixels.heights[i]});
    total += size;
  }

  std::vector<float> subset_scores;
  std::vector<std::uint8_t> subset_labels;
  const float* scores = pixels.scores.data();
  const std::uint8_t* labels = pixels.labels.data();
  if (members.size() != pixels.offsets.size()) {
    subset_scores.reserve(total);
    subset_labels.reserve(total);
    for (const ScoreMapView& map : maps) {
      const std::size_t size = map.width * map.height;
      subset_scores.insert(subset_scores.end(), map.scores, map.scores + size);
      subset_labels.insert(subset_labels.end(), map.mask, map.mask + size);
    }
    scores = subset_scores.data();
    labels = subset_labels.data();
  }

  std::size_t defect_pixels = 0;
  for (std::size_t p = 0; p < total; ++p) defect_pixels += labels[p];
  if (defect_pixels == 0 || defect_pixels == total) return;
  row.pixel_auroc = auroc(scores, labels, total);
  row.pixel_auroc_eq7 = auroc_thresholds(scores, labels, total, 100);
  row.au_pro = au_pro(maps, 0.3);
}

MetricRow evaluate_group(const std::string& group, const std::vector<ImageResult>& images,
                         const PixelData& pixels, const std::vector<std::size_t>& members) {
  MetricRow row;
  row.group = group;
  row.images = members.size();
  std::vector<float> scores;
  std::vector<std::uint8_t> labels;
  for (const std::size_t i : members) {
    scores.push_back(images[i].score);
    labels.push_back(images[i].defect == good_defect ? 0 : 1);
    row.defective += labels.back();
  }
  if (row.defective > 0 && row.defective < row.images) row.image_auroc = auroc(scores, labels);
  pixel_metrics(pixels, members, row);
  return row;
}

std::string format_metric(const std::optional<double>& value) {
  if (!value) return "n/a";
  char text[16];
  std::snprintf(text, sizeof text, "%.4f", *value);
  return text;
}

nlohmann::json metric_json(const std::optional<double>& value) {
  return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

}  // namespace

void PixelData::append(const std::vector<float>& map, const std::vector<std::uint8_t>& mask,
                       std::size_t width, std::size_t height) {
  AMQ_EXPECTS(map.size() == width * height && mask.size() == width * height,
              "score map (" << map.size() << ") and mask (" << mask.size()
                            << ") must both hold " << width << " x " << height << " pixels");
  offsets.push_back(scores.size());
  widths.push_back(width);
  heights.push_back(height);
  scores.insert(scores.end(), map.begin(), map.end());
  labels.insert(labels.end(), mask.begin(), mask.end());
}

std::vector<MetricRow> evaluate(const std::vector<ImageResult>& images, const PixelData& pixels) {
  AMQ_EXPECTS(images.size() == pixels.offsets.size(),
              images.size() << " image results but " << pixels.offsets.size() << " score maps");
  std::vector<std::string> defects;
  for (const ImageResult& image : images) {
    if (image.defect != good_defect &&
        std::find(defects.begin(), defects.end(), image.defect) == defects.end()) {
      defects.push_back(image.defect);
    }
  }

  std::vector<MetricRow> rows;
  for (const std::string& defect : defects) {
    std::vector<std::size_t> members;
    for (std::size_t i = 0; i < images.size(); ++i) {
      if (images[i].defect == defect || images[i].defect == good_defect) members.push_back(i);
    }
    rows.push_back(evaluate_group(defect, images, pixels, members));
  }
  std::vector<std::size_t> everyone(images.size());
  for (std::size_t i = 0; i < images.size(); ++i) everyone[i] = i;
  rows.push_back(evaluate_group("overall", images, pixels, everyone));
  return rows;
}

void print_report(std::ostream& out, const TestReport& report) {
  char line[200];
  out << "method " << report.method << "\n\n";
  std::snprintf(line, sizeof line, "%-20s %6s %9s %11s %11s %14s %8s\n", "defect type", "images",
                "defective", "image AUROC", "pixel AUROC", "pixel (eq. 7)", "AU-PRO");
  out << line;
  for (const MetricRow& row : report.rows) {
    std::snprintf(line, sizeof line, "%-20s %6zu %9zu %11s %11s %14s %8s\n", row.group.c_str(),
                  row.images, row.defective, format_metric(row.image_auroc).c_str(),
                  format_metric(row.pixel_auroc).c_str(),
                  format_metric(row.pixel_auroc_eq7).c_str(), format_metric(row.au_pro).c_str());
    out << line;
  }

  const double n = static_cast<double>(std::max<std::size_t>(report.images.size(), 1));
  const StageTimes& t = report.times;
  out << "\nstage                      ms/image\n";
  const std::pair<const char*, double> stages[] = {
      {"load (read + decode)", t.load_ms},
      {"backbone (resize + CNN)", t.backbone_ms},
      {"encode (LSH codes)", t.encode_ms},
      {report.knn ? "query (kNN search)" : "query (filter probes)", t.query_ms},
      {"upsample + image score", t.upsample_ms},
      {"total", t.total_ms()}};
  for (const auto& [name, ms] : stages) {
    std::snprintf(line, sizeof line, "%-24s %10.2f\n", name, ms / n);
    out << line;
  }

  std::size_t good = 0;
  std::size_t good_flagged = 0;
  std::size_t defective_flagged = 0;
  for (const ImageResult& image : report.images) {
    const bool is_good = image.defect == good_defect;
    good += is_good;
    (is_good ? good_flagged : defective_flagged) += image.anomalous;
  }
  std::snprintf(line, sizeof line, "\n%.2f images/s (scoring loop), metrics took %.1f s\n",
                1000.0 * n / std::max(report.wall_ms, 1e-9), report.evaluation_ms / 1000.0);
  out << line;
  out << "peak resident memory: " << format_bytes(report.peak_rss_scoring)
      << " while scoring, " << format_bytes(report.peak_rss) << " with the pixel metrics\n";
  out << "model file: " << format_bytes(report.model_bytes) << " ("
      << (report.knn ? "index " : "filter ") << format_bytes(report.structure_bytes) << ")\n";
  std::snprintf(line, sizeof line,
                "threshold %.6g: %zu of %zu good and %zu of %zu defective images flagged\n",
                report.threshold, good_flagged, good, defective_flagged,
                report.images.size() - good);
  out << line;
}

nlohmann::json report_json(const TestReport& report) {
  nlohmann::json json;
  json["model"] = report.model;
  json["data"] = report.data;
  json["features"] = report.features;
  json["method"] = report.method;
  for (const MetricRow& row : report.rows) {
    nlohmann::json entry = {{"images", row.images},
                            {"defective", row.defective},
                            {"image_auroc", metric_json(row.image_auroc)},
                            {"pixel_auroc", metric_json(row.pixel_auroc)},
                            {"pixel_auroc_eq7", metric_json(row.pixel_auroc_eq7)},
                            {"au_pro", metric_json(row.au_pro)}};
    if (row.group == "overall") {
      json["overall"] = entry;
    } else {
      json["per_defect"][row.group] = entry;
    }
  }
  const double n = static_cast<double>(std::max<std::size_t>(report.images.size(), 1));
  const StageTimes& t = report.times;
  json["ms_per_image"] = {{"load", t.load_ms / n},         {"backbone", t.backbone_ms / n},
                          {"encode", t.encode_ms / n},     {"query", t.query_ms / n},
                          {"upsample", t.upsample_ms / n}, {"total", t.total_ms() / n}};
  json["cpu_ms_per_image"] = {{"encode", t.encode_cpu_ms / n}, {"query", t.query_cpu_ms / n}};
  json["images_per_second"] = 1000.0 * n / std::max(report.wall_ms, 1e-9);
  json["evaluation_seconds"] = report.evaluation_ms / 1000.0;
  json["peak_rss_bytes_scoring"] = report.peak_rss_scoring;
  json["peak_rss_bytes"] = report.peak_rss;
  json["model_bytes"] = report.model_bytes;
  json[report.knn ? "index_bytes" : "filter_bytes"] = report.structure_bytes;
  json["threshold"] = report.threshold;
  json["images"] = nlohmann::json::array();
  for (const ImageResult& image : report.images) {
    json["images"].push_back({{"path", image.path},
                              {"defect", image.defect},
                              {"score", image.score},
                              {"anomalous", image.anomalous}});
  }
  return json;
}

}  // namespace amq::cli

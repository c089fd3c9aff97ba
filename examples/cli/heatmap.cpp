#include "heatmap.hpp"

#include <algorithm>
#include <vector>

#include <opencv2/imgproc.hpp>

#include "amq/error.hpp"

namespace amq::cli {

cv::Mat render_heatmap(const cv::Mat& rgb, const float* scores, const std::uint8_t* mask,
                       const HeatmapStyle& style) {
  AMQ_EXPECTS(rgb.type() == CV_8UC3 && !rgb.empty(), "heatmap needs an 8-bit RGB image");
  AMQ_EXPECTS(scores != nullptr, "heatmap needs a score map");
  AMQ_EXPECTS(style.high > style.low, "heatmap score range is empty: [" << style.low << ", "
                                                                        << style.high << "]");

  // Scores to 0..255 over [low, high], then the colour map (OpenCV's colour maps are BGR).
  const cv::Mat score_view(rgb.rows, rgb.cols, CV_32F, const_cast<float*>(scores));
  cv::Mat levels;
  const double scale = 255.0 / (style.high - style.low);
  score_view.convertTo(levels, CV_8U, scale, -style.low * scale);
  cv::Mat colours;
  cv::applyColorMap(levels, colours, cv::COLORMAP_JET);
  cv::cvtColor(colours, colours, cv::COLOR_BGR2RGB);

  cv::Mat overlay;
  cv::addWeighted(rgb, 1.0 - style.alpha, colours, style.alpha, 0.0, overlay);

  if (mask != nullptr) {
    const cv::Mat mask_view(rgb.rows, rgb.cols, CV_8U, const_cast<std::uint8_t*>(mask));
    std::vector<std::vector<cv::Point>> contours;
    cv::findContours(mask_view.clone(), contours, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_SIMPLE);
    const int thickness = std::max(1, std::min(rgb.rows, rgb.cols) / 300);
    cv::drawContours(overlay, contours, -1, cv::Scalar(255, 255, 255), thickness);
  }
  return overlay;
}

}  // namespace amq::cli

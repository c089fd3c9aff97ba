// amq: train an AMQ anomaly detector on normal images, test it on an MVTec AD category, and
// score single images. `amq --help` and docs/command-line.md describe the options.
#include <algorithm>
#include <cmath>
#include <exception>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "amq/error.hpp"
#include "commands.hpp"
#include "compare.hpp"

namespace {

using namespace amq::cli;

/// Accepts a finite number x with low < x < high (low <= x when `low_closed`), so that a
/// negative, zero, NaN or out-of-range value is refused while parsing, naming the value given.
CLI::Validator finite_between(double low, double high, bool low_closed = false) {
  std::ostringstream text_of_range;
  text_of_range << (low_closed ? "[" : "(") << low << ", " << high << ")";
  const std::string range = text_of_range.str();
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        double value = 0.0;
        std::size_t used = 0;
        try {
          value = std::stod(text, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        const bool inside = (low_closed ? value >= low : value > low) && value < high;
        if (used == text.size() && used > 0 && std::isfinite(value) && inside) return {};
        return "must be a finite number in " + range + ", got " + text;
      },
      "NUMBER in " + range);
}

/// Accepts a whole number of at least 1 (unsigned options would otherwise wrap "-5").
const CLI::Validator at_least_one = finite_between(1.0, HUGE_VAL, true);

/// The options of the features and of every method, shared by `train` and `compare`.
void add_method_options(CLI::App* command, TrainOptions& o) {
  command->add_option("--backbone", o.backbone, "Feature source")
      ->check(CLI::IsMember({"mobilenet_v2", "wide_resnet50_2", "wrn50"}))
      ->capture_default_str();
  command
      ->add_option("--layers", o.layers, "Backbone layers to concatenate (default: the backbone's)")
      ->delimiter(',');
  command->add_option("--image-size", o.image_size, "Side of the network input")
      ->check(at_least_one)
      ->capture_default_str();
  command->add_flag("--local-average", o.local_average,
                    "Average each layer over 3x3 neighbourhoods");
  command->add_option("--hashes,-G", o.hashes, "Hash functions G")
      ->check(at_least_one)
      ->capture_default_str();
  CLI::Option* relative =
      command
          ->add_option("--bucket-width", o.bucket_width,
                       "Bucket width in multiples of the projection spread of the features")
          ->check(finite_between(0.0, HUGE_VAL))
          ->capture_default_str();
  command
      ->add_option("--absolute-bucket-width", o.absolute_bucket_width,
                   "Bucket width in feature units (replaces --bucket-width)")
      ->check(finite_between(0.0, HUGE_VAL))
      ->excludes(relative);
  CLI::Option* bits = command
                          ->add_option("--filter-bits,-M", o.filter_bits,
                                       "Filter size M in bits; probes by the paper's eq. 5")
                          ->check(at_least_one)
                          ->capture_default_str();
  command
      ->add_option("--target-fpr", o.target_fpr,
                   "Size the filter for this false-positive rate from the distinct keys")
      ->check(finite_between(0.0, 1.0))
      ->excludes(bits);
  command->add_option("--probes", o.probes, "Probe count B (default: by the sizing)")
      ->check(at_least_one);
  command
      ->add_option("--codes-per-key,-K", o.codes_per_key,
                   "K codes per key (AND-concatenation, G/K keys per pixel); 1 = the paper")
      ->check(at_least_one)
      ->capture_default_str();
  command->add_option("--projection", o.projection, "LSH projection")
      ->check(CLI::IsMember({"dense", "structured"}))
      ->capture_default_str();
  command->add_option("--filter", o.filter, "Bloom filter layout")
      ->check(CLI::IsMember({"classic", "split-block"}))
      ->capture_default_str();
  command->add_option("--seed", o.seed, "Seed of projection and filter")->capture_default_str();
  command
      ->add_option("--image-score", o.image_score,
                   "Image score of a score map (default: mean for amq, max for kNN)")
      ->check(CLI::IsMember({"mean", "max"}));
  command
      ->add_option("--holdout", o.holdout,
                   "Fraction of normal images kept out to choose the threshold")
      ->capture_default_str();
  command
      ->add_option("--smooth-sigma", o.smooth_sigma,
                   "Gaussian smoothing of score maps, in feature-map pixels, before "
                   "bilinear upsampling (0: nearest neighbour, as the paper)")
      ->check(finite_between(0.0, HUGE_VAL, true))
      ->capture_default_str();
  command
      ->add_option("--coreset", o.coreset,
                   "kNN: keep this fraction of the memory bank by greedy k-centre selection "
                   "(PatchCore: 0.1); 0 = all features")
      ->capture_default_str();
  command->add_option("--hnsw-m", o.hnsw_m, "knn-hnsw: neighbours per graph node M")
      ->capture_default_str();
  command
      ->add_option("--ef-construction", o.ef_construction,
                   "knn-hnsw: candidate list length while building")
      ->capture_default_str();
  command->add_option("--ef-search", o.ef_search, "knn-hnsw: candidate list length per query")
      ->capture_default_str();
  command->add_option("--nlist", o.nlist, "knn-ivfpq: coarse cells")->capture_default_str();
  command->add_option("--pq-m", o.pq_m, "knn-ivfpq: sub-quantisers (must divide D)")
      ->capture_default_str();
  command->add_option("--pq-nbits", o.pq_nbits, "knn-ivfpq: bits per sub-quantiser code")
      ->capture_default_str();
  command->add_option("--nprobe", o.nprobe, "knn-ivfpq: cells visited per query")
      ->capture_default_str();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"amq: image anomaly detection by approximate membership queries"};
  app.require_subcommand(1);

  TrainOptions train;
  CLI::App* train_command =
      app.add_subcommand("train", "Fit a model on the normal images of DIR/train/good");
  train_command->add_option("--data", train.data, "Category folder (repeat to merge several)")
      ->required();
  train_command->add_option("--weights", train.weights,
                            "Backbone weights (safetensors); with --resume: as trained");
  train_command
      ->add_option("--method", train.method,
                   "amq, or a PatchCore-style kNN baseline: knn-flat (exact), "
                   "knn-hnsw, knn-ivfpq")
      ->check(CLI::IsMember({"amq", "knn-flat", "knn-hnsw", "knn-ivfpq"}))
      ->capture_default_str();
  add_method_options(train_command, train);
  train_command->add_option("--batch-size", train.batch_size, "Images per forward pass")
      ->check(at_least_one)
      ->capture_default_str();
  train_command->add_option("--out,-o", train.out,
                            "Model file to write (with --resume: default the resumed model)");
  train_command->add_option("--resume", train.resume,
                            "Add the normal images of --data to this trained model, keeping its "
                            "features and parameters (docs/distributed.md)");

  TestOptions test;
  CLI::App* test_command =
      app.add_subcommand("test", "Evaluate a model on DIR/test with DIR/ground_truth masks");
  test_command->add_option("--model,-m", test.model, "Model file")->required();
  test_command->add_option("--data", test.data, "Category folder")->required();
  test_command->add_option("--weights", test.weights, "Backbone weights (default: as trained)");
  test_command->add_option("--report", test.report, "Write the results as JSON");
  test_command->add_option("--heatmaps", test.heatmaps, "Write a heatmap per image here");
  test_command->add_option("--smooth-sigma", test.smooth_sigma,
                           "Replace the model's score-map smoothing (see train)")
      ->check(finite_between(0.0, HUGE_VAL, true));
  test_command
      ->add_option("--device", test.device,
                   "Score on the CPU or (amq models, CUDA builds) on the GPU")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();

  ScoreOptions score;
  CLI::App* score_command = app.add_subcommand("score", "Image score and verdict of each image");
  score_command->add_option("--model,-m", score.model, "Model file")->required();
  score_command->add_option("images", score.images, "Images to score")->required();
  score_command->add_option("--weights", score.weights, "Backbone weights (default: as trained)");
  score_command->add_option("--heatmaps", score.heatmaps, "Write a heatmap per image here");
  score_command->add_option("--smooth-sigma", score.smooth_sigma,
                            "Replace the model's score-map smoothing (see train)")
      ->check(finite_between(0.0, HUGE_VAL, true));
  score_command
      ->add_option("--device", score.device,
                   "Score on the CPU or (amq models, CUDA builds) on the GPU")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();

  CompareOptions compare;
  CLI::App* compare_command = app.add_subcommand(
      "compare", "Train and test amq and kNN baselines on the same features, one table");
  compare_command->add_option("--data", compare.data, "Category folder")->required();
  compare_command->add_option("--weights", compare.weights, "Backbone weights (safetensors)")
      ->required();
  compare_command->add_option("--methods", compare.methods, "Methods to compare, in order")
      ->delimiter(',')
      ->check(CLI::IsMember({"amq", "knn-flat", "knn-hnsw", "knn-ivfpq"}))
      ->capture_default_str();
  add_method_options(compare_command, compare.settings);
  compare_command->add_option("--features", compare.features,
                              "Feature cache: read if it exists and matches, else written");
  compare_command->add_option("--report", compare.report, "Write the results as JSON");
  compare_command->add_flag("--extract-only", compare.extract_only,
                            "Only extract the features into the --features cache");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  }

  // Options that do not change the model; every other train option is fixed by a model.
  const std::vector<std::string> free_with_resume = {"--data",   "--weights",    "--out",
                                                     "--resume", "--batch-size", "--help"};
  for (const CLI::Option* option : train_command->get_options()) {
    if (option->get_lnames().empty()) continue;
    const std::string flag = "--" + option->get_lnames().front();
    if (option->count() > 0 && std::find(free_with_resume.begin(), free_with_resume.end(), flag) ==
                                   free_with_resume.end()) {
      train.model_options.push_back(flag);
    }
  }

  try {
    if (train_command->parsed()) run_train(train);
    if (test_command->parsed()) run_test(test);
    if (score_command->parsed()) run_score(score);
    if (compare_command->parsed()) run_compare(compare);
  } catch (const amq::Error& error) {
    std::cerr << "error: " << error.what() << "\n";
    return 1;
  } catch (const std::exception& error) {
    std::cerr << "error: " << error.what() << "\n";
    return 1;
  }
  return 0;
}

// amq: train an AMQ anomaly detector on normal images, test it on an MVTec AD category, and
// score single images. `amq --help` and docs/command-line.md describe the options.
#include <exception>
#include <iostream>

#include <CLI/CLI.hpp>

#include "amq/error.hpp"
#include "commands.hpp"

int main(int argc, char** argv) {
  using namespace amq::cli;
  CLI::App app{"amq: image anomaly detection by approximate membership queries"};
  app.require_subcommand(1);

  TrainOptions train;
  CLI::App* train_command =
      app.add_subcommand("train", "Fit a model on the normal images of DIR/train/good");
  train_command->add_option("--data", train.data, "Category folder (repeat to merge several)")
      ->required();
  train_command->add_option("--backbone", train.backbone, "Feature source")
      ->check(CLI::IsMember({"mobilenet_v2", "wide_resnet50_2", "wrn50"}))
      ->capture_default_str();
  train_command->add_option("--weights", train.weights, "Backbone weights (safetensors)")
      ->required();
  train_command->add_option("--layers", train.layers,
                            "Backbone layers to concatenate (default: the backbone's)")
      ->delimiter(',');
  train_command->add_option("--image-size", train.image_size, "Side of the network input")
      ->capture_default_str();
  train_command->add_flag("--local-average", train.local_average,
                          "Average each layer over 3x3 neighbourhoods");
  train_command->add_option("--hashes,-G", train.hashes, "Hash functions G")
      ->capture_default_str();
  CLI::Option* relative = train_command
      ->add_option("--bucket-width", train.bucket_width,
                   "Bucket width in multiples of the projection spread of the features")
      ->capture_default_str();
  train_command
      ->add_option("--absolute-bucket-width", train.absolute_bucket_width,
                   "Bucket width in feature units (replaces --bucket-width)")
      ->excludes(relative);
  CLI::Option* bits = train_command
      ->add_option("--filter-bits,-M", train.filter_bits,
                   "Filter size M in bits; probes by the paper's eq. 5")
      ->capture_default_str();
  train_command
      ->add_option("--target-fpr", train.target_fpr,
                   "Size the filter for this false-positive rate from the distinct keys")
      ->excludes(bits);
  train_command->add_option("--probes", train.probes, "Probe count B (default: by the sizing)");
  train_command
      ->add_option("--codes-per-key,-K", train.codes_per_key,
                   "K codes per key (AND-concatenation, G/K keys per pixel); 1 = the paper")
      ->capture_default_str();
  train_command->add_option("--filter", train.filter, "Bloom filter layout")
      ->check(CLI::IsMember({"classic", "split-block"}))
      ->capture_default_str();
  train_command->add_option("--seed", train.seed, "Seed of projection and filter")
      ->capture_default_str();
  train_command->add_option("--image-score", train.image_score, "Image score of a score map")
      ->check(CLI::IsMember({"mean", "max"}))
      ->capture_default_str();
  train_command->add_option("--holdout", train.holdout,
                            "Fraction of normal images kept out to choose the threshold")
      ->capture_default_str();
  train_command->add_option("--batch-size", train.batch_size, "Images per forward pass")
      ->capture_default_str();
  train_command->add_option("--smooth-sigma", train.smooth_sigma,
                            "Gaussian smoothing of score maps, in feature-map pixels, before "
                            "bilinear upsampling (0: nearest neighbour, as the paper)")
      ->capture_default_str();
  train_command->add_option("--out,-o", train.out, "Model file to write")->required();

  TestOptions test;
  CLI::App* test_command =
      app.add_subcommand("test", "Evaluate a model on DIR/test with DIR/ground_truth masks");
  test_command->add_option("--model,-m", test.model, "Model file")->required();
  test_command->add_option("--data", test.data, "Category folder")->required();
  test_command->add_option("--weights", test.weights, "Backbone weights (default: as trained)");
  test_command->add_option("--report", test.report, "Write the results as JSON");
  test_command->add_option("--heatmaps", test.heatmaps, "Write a heatmap per image here");
  test_command->add_option("--smooth-sigma", test.smooth_sigma,
                           "Replace the model's score-map smoothing (see train)");

  ScoreOptions score;
  CLI::App* score_command =
      app.add_subcommand("score", "Image score and verdict of each image");
  score_command->add_option("--model,-m", score.model, "Model file")->required();
  score_command->add_option("images", score.images, "Images to score")->required();
  score_command->add_option("--weights", score.weights, "Backbone weights (default: as trained)");
  score_command->add_option("--heatmaps", score.heatmaps, "Write a heatmap per image here");
  score_command->add_option("--smooth-sigma", score.smooth_sigma,
                            "Replace the model's score-map smoothing (see train)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  }

  try {
    if (train_command->parsed()) run_train(train);
    if (test_command->parsed()) run_test(test);
    if (score_command->parsed()) run_score(score);
  } catch (const amq::Error& error) {
    std::cerr << "error: " << error.what() << "\n";
    return 1;
  } catch (const std::exception& error) {
    std::cerr << "error: " << error.what() << "\n";
    return 1;
  }
  return 0;
}

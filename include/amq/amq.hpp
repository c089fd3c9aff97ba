/// @file amq.hpp
/// @brief The one include for users of amq: feature maps, LSH encoder, Bloom filters, the
/// AmqScorer with its save/load, score maps and evaluation metrics.
///
/// The CUDA backend (amq/cuda/) needs the CUDA Toolkit and is included on its own.
#pragma once

#include "amq/amq_scorer.hpp"
#include "amq/bloom_filter.hpp"
#include "amq/bloom_policies.hpp"
#include "amq/config.hpp"
#include "amq/error.hpp"
#include "amq/feature_map.hpp"
#include "amq/hashing.hpp"
#include "amq/lsh_encoder.hpp"
#include "amq/metrics.hpp"
#include "amq/multi_radius_scorer.hpp"
#include "amq/random.hpp"
#include "amq/score_map.hpp"
#include "amq/serialization.hpp"
#include "amq/structured_projection.hpp"

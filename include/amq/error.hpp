/// @file error.hpp
/// @brief The exception amq throws for bad arguments and bad files, and its precondition macro.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace amq {

/// Thrown for every bad argument, bad file or failed backend call. The message says what was
/// wrong and with which value; it starts with the amq source location that detected it.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {

[[noreturn]] inline void throw_error(const char* file, int line, const std::string& message) {
  std::ostringstream text;
  text << "amq: " << message << " [" << file << ':' << line << ']';
  throw Error(text.str());
}

}  // namespace detail
}  // namespace amq

/// Throws amq::Error unless `condition` holds. The message is a stream expression:
/// `AMQ_EXPECTS(g > 0, "hash count G must be positive, got " << g);`
#define AMQ_EXPECTS(condition, message)                               \
  do {                                                                \
    if (!(condition)) {                                               \
      std::ostringstream amq_message_;                                \
      amq_message_ << message;                                        \
      ::amq::detail::throw_error(__FILE__, __LINE__, amq_message_.str()); \
    }                                                                 \
  } while (false)

/// Throws amq::Error unconditionally, with a stream-expression message.
#define AMQ_FAIL(message) AMQ_EXPECTS(false, message)

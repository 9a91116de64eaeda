// Base64 (RFC 4648, the standard alphabet, with padding): how the control protocol carries console bytes, which
// need not be text, inside JSON strings.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace ckpt {

std::string base64_encode(std::span<const uint8_t> bytes);
// Strict: the standard alphabet only, padded to a multiple of 4, no whitespace; anything else is kInvalidArgument
// naming the first offending position.
Result<std::vector<uint8_t>> base64_decode(std::string_view text);

}  // namespace ckpt

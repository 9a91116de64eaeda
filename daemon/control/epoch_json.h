// One epoch's summary as JSON: the shape `ckpt list --json` prints and the list command returns.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>

#include "snapshot/catalog.h"

namespace ckpt::control {

nlohmann::json epoch_summary_json(uint64_t epoch, const snap::CatalogEntry& entry);

}  // namespace ckpt::control

#pragma once
// Reading a plugin's descriptor: whether it is well formed, and a copy of it the host owns.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "taskhive/loader.hpp"
#include "taskhive/plugin_abi.h"

namespace taskhive::detail {

/// Whether `version` is a semantic version: MAJOR.MINOR.PATCH, numbers without leading zeros, optional
/// -prerelease and +build of dot-separated [0-9A-Za-z-] identifiers (semver.org 2.0.0).
bool is_semver(std::string_view version) noexcept;

/// Why a descriptor with the right ABI version is malformed ("malformed descriptor: ..."), or nothing.
std::optional<std::string> descriptor_problem(const taskhive_plugin_descriptor& descriptor);

/// The descriptor's kinds, copied (call only after descriptor_problem() found nothing).
std::vector<PluginKind> copy_kinds(const taskhive_plugin_descriptor& descriptor);

/// Everything after dlopen, shared by the in-process loader and the probe child (taskhive-probe) so both
/// refuse with the same words: finds taskhive_plugin_entry in `handle`, calls it, checks the ABI version and
/// the descriptor. On success fills record.name, version, description and kinds and returns the descriptor;
/// otherwise sets record.reason (and record.name if the descriptor had one) and returns nullptr. The
/// duplicate-name check is not here: only the host knows the other plugins.
const taskhive_plugin_descriptor* read_descriptor(void* handle, PluginRecord& record);

}  // namespace taskhive::detail

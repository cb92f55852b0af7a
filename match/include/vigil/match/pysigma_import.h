#pragma once
// `vigil mapping import-pysigma`: a pySigma processing pipeline written in YAML, as vigil's
// field mapping (mapping.h).
//
// What converts (pySigma's identifiers):
//   field_name_mapping         -> fields / fields_by_logsource (in the pipeline's order)
//   field_name_prefix          -> field_prefix; with include_fields, per-field paths; with
//                                 exclude_fields or a negated processing_item_applied on the
//                                 mapping items, the prefix of the fields they do not map
//   add_condition              -> a logsources entry (its rule's logsource condition as
//                                 `match`, its exact values as `where`)
//   detection_item_failure     -> `unsupported: message` for the fields of its include_fields
//   value_placeholders + vars  -> placeholders
//   set_state, set_custom_attribute, postprocessing, finalizers: ignored (they shape the
//                                 query a backend writes, not what matches), and said so
// Rule conditions must be `logsource` ones (several: and, or with rule_cond_op). Anything
// else (another transformation, condition type or a negated condition) refuses the import,
// each one named, since a mapping that silently differs from the pipeline would make rules
// quietly miss.

#include <string>
#include <vector>

#include "vigil/core/status.h"
#include "vigil/match/mapping.h"

namespace vigil::match {

struct PySigmaImport {
  std::string mapping_yaml;        // vigil's mapping format, accepted by FieldMapping::parse
  std::vector<std::string> notes;  // what was ignored, and why
};

// `logsources_from`, if given, supplies the logsources (and host and time fields) the
// pipeline does not define (a pipeline that adds no logsource condition relies on its
// backend's index; vigil needs them).
Expected<PySigmaImport> import_pysigma_pipeline(const std::string& yaml_text,
                                                const std::string& source,
                                                const FieldMapping* logsources_from = nullptr);

}  // namespace vigil::match

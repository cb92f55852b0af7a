#include "compiled_rules.h"

namespace vigil::match::detail {

CompiledRules::~CompiledRules() {
  for (auto& d : databases) {
    hs_free_database(d.db);
    hs_free_database(d.literal_db);
  }
  for (auto* d : lazy_databases) hs_free_database(d);
  for (auto& f : lazy_fields) hs_free_database(f.db);
  for (auto* c : confirms) pcre2_code_free(c);
  pcre2_match_context_free(confirm_limits);
}

}  // namespace vigil::match::detail

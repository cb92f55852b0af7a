#pragma once
// ContentSync's state shared by its files: content_sync.cc (the Kafka clients, the thread,
// forwarded actions), content_sync_read.cc (reading the topic: records, bundles, catching up)
// and content_sync_follow.cc (publishing, following decisions, reporting, coordinating, the
// status document). Private to vigil_ingest.

#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "content_topic.h"
#include "vigil/ingest/content_sync.h"

namespace vigil::ingest {

struct ContentSync::Shared {
  mutable std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, ctopic::ActionResult> results;
  std::optional<ctopic::Decision> decision;  // the latest read
  std::map<std::string, ctopic::Report> reports;
  std::set<std::string> published;  // bundle hashes on the topic
  bool caught_up = false;
  int64_t lag = 0;
  std::string apply_error;  // why the latest decision is not (fully) followed here
  // The run thread's only: actions on the topic not yet withdrawn, by id.
  std::map<std::string, ctopic::Action> pending_actions;
};

}  // namespace vigil::ingest

#pragma once
// The HTTP server's TLS context (private to api/): reloaded when its files change.

#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <boost/asio/ssl.hpp>
#include <boost/beast/core/error.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>

#include "vigil/api/http.h"
#include "vigil/core/mutex.h"
#include "vigil/core/status.h"

namespace vigil::api {

// The server's TLS context, rebuilt when the certificate or key file changes (cert-manager and
// Kubernetes Secret updates rotate them in place), checked at most once per reload interval on
// accept. A file that cannot be loaded keeps the previous context and is logged, so a rotation
// caught half-written never takes the API down. Connections hold the context they started with.
class TlsContext {
  using ssl_context = boost::asio::ssl::context;

 public:
  Status configure(const HttpServerOptions& o) {
    if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
      return Status::invalid("TLS needs both a certificate file and a key file");
    }
    if (o.tls_cert_file.empty()) return Status::ok();
    cert_ = o.tls_cert_file;
    key_ = o.tls_key_file;
    reload_interval_ = std::chrono::milliseconds(o.tls_reload_interval_ms);
    auto ctx = load();
    if (!ctx) return ctx.status();
    MutexLock lock(mu_);  // before the server starts, but the analysis cannot know that
    context_ = std::move(*ctx);
    stamp_ = stamp();
    checked_ = std::chrono::steady_clock::now();
    return Status::ok();
  }

  bool enabled() const { return !cert_.empty(); }

  std::shared_ptr<ssl_context> current() {
    MutexLock lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    if (reload_interval_.count() > 0 && now - checked_ >= reload_interval_) {
      checked_ = now;
      if (auto st = stamp(); st != stamp_) {
        if (auto ctx = load()) {
          context_ = std::move(*ctx);
          stamp_ = st;
          spdlog::info("https: reloaded certificate {} and key {}", cert_, key_);
        } else {
          spdlog::warn("https: keeping the previous certificate: {}", ctx.status().message());
        }
      }
    }
    return context_;
  }

 private:
  Expected<std::shared_ptr<ssl_context>> load() const {
    auto ctx = std::make_shared<ssl_context>(ssl_context::tls_server);
    ctx->set_options(ssl_context::default_workarounds | ssl_context::no_sslv2 |
                     ssl_context::no_sslv3 | ssl_context::no_tlsv1 | ssl_context::no_tlsv1_1 |
                     ssl_context::no_compression | ssl_context::single_dh_use);
    boost::beast::error_code ec;
    ctx->use_certificate_chain_file(cert_, ec);
    if (ec) return Status::invalid("TLS certificate file '" + cert_ + "': " + ec.message());
    ctx->use_private_key_file(key_, ssl_context::pem, ec);
    if (ec) return Status::invalid("TLS key file '" + key_ + "': " + ec.message());
    if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
      return Status::invalid("TLS key file '" + key_ + "' does not belong to the certificate in '" +
                             cert_ + "'");
    }
    return ctx;
  }

  // What a rotation changes: both files' modification times and sizes.
  std::string stamp() const {
    std::string out;
    for (const auto* f : {&cert_, &key_}) {
      std::error_code ec;
      const auto t = std::filesystem::last_write_time(*f, ec);
      const auto n = std::filesystem::file_size(*f, ec);
      out += std::to_string(ec ? 0 : t.time_since_epoch().count()) + ":" +
             std::to_string(ec ? 0 : n) + ";";
    }
    return out;
  }

  std::string cert_, key_;
  std::chrono::milliseconds reload_interval_{0};
  Mutex mu_;
  std::shared_ptr<ssl_context> context_ VIGIL_GUARDED_BY(mu_);
  std::string stamp_ VIGIL_GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point checked_ VIGIL_GUARDED_BY(mu_);
};

}  // namespace vigil::api

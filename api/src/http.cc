#include "vigil/api/http.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <spdlog/spdlog.h>

#include <array>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <filesystem>
#include <list>
#include <mutex>
#include <thread>
#include <unordered_map>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "admission.h"
#include "tls_context.h"
#include "vigil/core/thread_name.h"
#include "vigil/core/utf8.h"

namespace vigil::api {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

struct HttpServer::State {
  // Declared before the contexts: sessions still pending when they are destroyed use them.
  HttpServerOptions options;
  Router router;
  std::atomic<size_t> connections{0};
  Admission admission;
  // Bytes of request bodies admitted and not yet released (see max_body_bytes_in_flight).
  std::atomic<size_t> body_bytes_in_flight{0};
  std::atomic<size_t> body_bytes_since_trim{0};
  std::atomic<int> in_flight{0};  // requests read and not yet answered
  std::atomic<bool> stopped{false};
  uint16_t port = 0;
  TlsContext tls;
  // One single-threaded io_context per I/O thread, connections dealt round-robin: a
  // connection's handlers never run concurrently, so they need no strand (whose locking and
  // executor copies were ~5% of the CPU of a small request).
  std::vector<std::unique_ptr<net::io_context>> contexts;
  size_t next_context = 0;  // acceptor's thread only
  tcp::acceptor acceptor;
  std::vector<std::thread> threads;
  net::thread_pool slow_pool;            // Router::Cost::kSlow handlers
  net::thread_pool content_pool;         // Router::Cost::kContent handlers
  std::atomic<int> content_requests{0};  // running or queued there

  State(const HttpServerOptions& o, Router r)
      : options(o),
        router(std::move(r)),
        contexts(make_contexts(o.threads)),
        acceptor(*contexts.front()),
        slow_pool(static_cast<size_t>(std::max(o.slow_threads, 1))),
        content_pool(static_cast<size_t>(std::max(o.content_threads, 1))) {}
  static std::vector<std::unique_ptr<net::io_context>> make_contexts(int n) {
    std::vector<std::unique_ptr<net::io_context>> out;
    for (int i = 0; i < std::max(n, 1); ++i) out.push_back(std::make_unique<net::io_context>(1));
    return out;
  }
};

namespace {

// Gives the memory of large request bodies back to the kernel once none is in flight: the
// allocator is tuned to keep freed memory for reuse (vigil/core/allocator.h), which a burst
// of large bodies would otherwise pin at its peak.
void release_body_bytes(HttpServer::State& state, size_t bytes) {
  if (bytes == 0) return;
  const size_t since = state.body_bytes_since_trim.fetch_add(bytes) + bytes;
  if (state.body_bytes_in_flight.fetch_sub(bytes) == bytes && since >= (8u << 20)) {
    state.body_bytes_since_trim.store(0);
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
  }
}

// One connection: plain TCP (beast::tcp_stream) or TLS over it (beast::ssl_stream).
//
// A request is read in two steps: its header, then (only if the route exists, the caller is
// authorised for it and the body fits the server's budget) its body. Nobody without a valid
// token makes the server hold a body, and the bodies in flight together stay under
// max_body_bytes_in_flight.
template <class Stream>
class Session : public Evictable, public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

 public:
  Session(tcp::socket&& socket, HttpServer::State& state, std::string client) requires(!kTls)
      : stream_(std::move(socket)),
        state_(state),
        client_(std::move(client)),
        idle_(state.admission.none()) {}
  Session(tcp::socket&& socket, HttpServer::State& state, std::string client,
          std::shared_ptr<ssl::context> tls) requires kTls : tls_(std::move(tls)),
                                                             stream_(std::move(socket), *tls_),
                                                             state_(state),
                                                             client_(std::move(client)),
                                                             idle_(state.admission.none()) {}
  ~Session() override {
    if (idle_ != state_.admission.none()) state_.admission.mark_busy(idle_);
    release_body_bytes(state_, reserved_);
    state_.admission.release(client_);
    state_.connections.fetch_sub(1);
  }

  void run() {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (kTls) {
        // The handshake shares the read timeout: a client that connects and stays silent is
        // dropped.
        self->socket_stream().expires_after(
            std::chrono::milliseconds(self->state_.options.read_timeout_ms));
        self->set_idle(true);
        self->stream_.async_handshake(ssl::stream_base::server, [self](beast::error_code ec) {
          self->set_idle(false);
          if (ec) {
            // Counted, not logged: any client or scanner can cause it, at any rate.
            if (self->state_.options.tls_handshake_failures)
              self->state_.options.tls_handshake_failures->inc();
            return;  // the socket closes with the session
          }
          self->read();
        });
      } else {
        self->read();
      }
    });
  }

  // From the accepting thread: closes the connection on its own thread, unless it became
  // busy meanwhile (then it is left to finish; the limit is exceeded by one for a moment).
  void evict() override {
    net::post(stream_.get_executor(), [self = this->shared_from_this()] {
      if (!self->waiting_) return;
      self->evicted_ = true;
      beast::error_code ec;
      self->socket_stream().socket().close(ec);
    });
  }

 private:
  beast::tcp_stream& socket_stream() { return beast::get_lowest_layer(stream_); }

  void set_idle(bool idle) {
    waiting_ = idle;
    if (idle && idle_ == state_.admission.none()) {
      idle_ = state_.admission.mark_idle(this->weak_from_this(), client_);
    } else if (!idle && idle_ != state_.admission.none()) {
      state_.admission.mark_busy(idle_);
      idle_ = state_.admission.none();
    }
  }

  void read() {
    header_parser_.emplace();
    header_parser_->header_limit(static_cast<uint32_t>(state_.options.max_header_bytes));
    header_parser_->body_limit(state_.options.max_body_bytes);
    // The first request of a connection gets the read timeout; later ones the idle timeout.
    // Under pressure (over half the connections in use) both shrink to the pressure timeout.
    auto timeout = std::chrono::milliseconds(requests_ == 0 ? state_.options.read_timeout_ms
                                                            : state_.options.idle_timeout_ms);
    if (state_.connections.load() > state_.options.max_connections / 2) {
      timeout = std::min(timeout, std::chrono::milliseconds(state_.options.pressure_timeout_ms));
    }
    socket_stream().expires_after(timeout);
    set_idle(true);
    http::async_read_header(
        stream_, buffer_, *header_parser_,
        beast::bind_front_handler(&Session::on_header, this->shared_from_this()));
  }

  // Whether a read error ends the connection quietly (or after an error reply).
  bool read_failed(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == net::error::operation_aborted || evicted_) {
      if (!evicted_) close();
      return true;
    }
    if (ec == http::error::body_limit) {
      reply_error(
          413, "request body exceeds " + std::to_string(state_.options.max_body_bytes) + " bytes");
      return true;
    }
    if (ec == http::error::header_limit) {
      reply_error(431, "request header exceeds " + std::to_string(state_.options.max_header_bytes) +
                           " bytes");
      return true;
    }
    if (ec) {
      if (ec.category() == http::make_error_code(http::error::bad_target).category()) {
        reply_error(400, "malformed HTTP request: " + ec.message());
      } else {
        close();
      }
      return true;
    }
    return false;
  }

  void on_header(beast::error_code ec, size_t) {
    set_idle(false);
    if (read_failed(ec)) return;
    ++requests_;
    const auto& req = header_parser_->get();
    request_ = HttpRequest{};
    request_.method = std::string(req.method_string());
    keep_alive_ = req.keep_alive();
    version_ = req.version();
    head_ = req.method() == http::verb::head;
    const std::string_view target(req.target().data(), req.target().size());
    const size_t q = target.find('?');
    auto path = percent_decode(target.substr(0, q), false);
    auto query =
        parse_query(q == std::string_view::npos ? std::string_view() : target.substr(q + 1));
    const bool has_body =
        header_parser_->chunked() || header_parser_->content_length().value_or(0) > 0;
    if (!path || !query)
      return answer_early(
          HttpResponse::problem(400, "malformed percent-encoding in the request target"), has_body);
    request_.path = std::move(*path);
    request_.query = std::move(*query);
    if (auto it = req.find(http::field::authorization); it != req.end())
      request_.authorization = std::string(it->value());
    resolved_ = state_.router.resolve(request_);
    // Route, method and authorisation are decided from the header alone.
    if (auto refused = state_.router.admit(request_, resolved_))
      return answer_early(std::move(*refused), has_body);
    if (resolved_.cost == Router::Cost::kContent &&
        state_.content_requests.load() >= state_.options.max_content_requests) {
      return answer_early(content_busy(), has_body);
    }
    if (!has_body) return dispatch();
    // The body's room is reserved before a byte of it is read: its declared length, or the
    // whole limit for a chunked body.
    const size_t want = header_parser_->content_length().value_or(state_.options.max_body_bytes);
    if (want > state_.options.max_body_bytes) {
      return answer_early(
          HttpResponse::problem(413, "request body exceeds " +
                                         std::to_string(state_.options.max_body_bytes) + " bytes"),
          true);
    }
    const size_t budget =
        std::max(state_.options.max_body_bytes_in_flight, state_.options.max_body_bytes);
    size_t now = state_.body_bytes_in_flight.load();
    do {
      if (now + want > budget) {
        if (state_.options.bodies_refused) state_.options.bodies_refused->inc();
        HttpResponse busy = HttpResponse::problem(
            503, "the server is reading as many request bodies as it may hold (" +
                     std::to_string(budget) + " bytes); retry shortly");
        busy.headers.emplace_back("Retry-After", "1");
        return answer_early(std::move(busy), true);
      }
    } while (!state_.body_bytes_in_flight.compare_exchange_weak(now, now + want));
    reserved_ = want;
    const bool expects_continue =
        beast::iequals(header_parser_->get()[http::field::expect], "100-continue");
    body_parser_.emplace(std::move(*header_parser_));
    body_parser_->body_limit(state_.options.max_body_bytes);
    header_parser_.reset();
    if (!expects_continue) return read_body();
    // The client (curl, for bodies over 1 KB) waits for this before it sends the body: it is
    // sent only now that the request is admitted, so a refused upload is never transferred.
    auto go_on =
        std::make_shared<http::response<http::empty_body>>(http::status::continue_, version_);
    socket_stream().expires_after(std::chrono::milliseconds(state_.options.read_timeout_ms));
    http::async_write(stream_, *go_on,
                      [self = this->shared_from_this(), go_on](beast::error_code ec, size_t) {
                        if (ec) return self->close();
                        self->read_body();
                      });
  }

  void read_body() {
    socket_stream().expires_after(std::chrono::milliseconds(state_.options.read_timeout_ms));
    http::async_read(stream_, buffer_, *body_parser_,
                     beast::bind_front_handler(&Session::on_body, this->shared_from_this()));
  }

  void on_body(beast::error_code ec, size_t) {
    if (read_failed(ec)) return;
    request_.body = std::move(body_parser_->get().body());
    body_parser_.reset();
    dispatch();
  }

  // An answer given from the header alone. If a body was announced, the connection closes
  // after it: the body is never read (the lingering close discards a bounded part of it).
  void answer_early(HttpResponse response, bool body_pending) {
    header_parser_.reset();
    state_.in_flight.fetch_add(1);
    write(std::move(response), keep_alive_ && !body_pending, version_, head_);
  }

  HttpResponse content_busy() const {
    HttpResponse busy = HttpResponse::problem(
        503, "bundle validations and dry runs are already running or waiting (" +
                 std::to_string(state_.options.max_content_requests) +
                 " at most); retry when they are done");
    busy.headers.emplace_back("Retry-After", "5");
    return busy;
  }

  void dispatch() {
    if (resolved_.cost == Router::Cost::kContent) {
      if (state_.content_requests.fetch_add(1) >= state_.options.max_content_requests) {
        state_.content_requests.fetch_sub(1);
        std::string().swap(request_.body);
        release_body_bytes(state_, std::exchange(reserved_, 0));
        state_.in_flight.fetch_add(1);
        return write(content_busy(), keep_alive_, version_, head_);
      }
      state_.in_flight.fetch_add(1);
      net::post(state_.content_pool, [self = this->shared_from_this()]() mutable {
        auto response = std::make_shared<HttpResponse>(self->call());
        self->state_.content_requests.fetch_sub(1);
        net::post(self->stream_.get_executor(), [self, response] {
          self->write(std::move(*response), self->keep_alive_, self->version_, self->head_);
        });
      });
      return;
    }
    state_.in_flight.fetch_add(1);
    if (resolved_.cost == Router::Cost::kSlow) {
      // Off this I/O thread; the answer is written from it again. Nothing else is pending
      // on the connection meanwhile (the next read starts after the write).
      net::post(state_.slow_pool, [self = this->shared_from_this()]() mutable {
        auto response = std::make_shared<HttpResponse>(self->call());
        net::post(self->stream_.get_executor(), [self, response] {
          self->write(std::move(*response), self->keep_alive_, self->version_, self->head_);
        });
      });
      return;
    }
    write(call(), keep_alive_, version_, head_);
  }

  HttpResponse call() {
    HttpResponse response;
    try {
      response = state_.router.route(request_, std::move(resolved_));
    } catch (const std::exception& e) {
      spdlog::error("http handler failed path={} error={}", utf8::repaired(request_.path),
                    e.what());
      response = HttpResponse::problem(500, "internal error");
    }
    // The body is no longer needed: its memory and its share of the budget go back.
    std::string().swap(request_.body);
    release_body_bytes(state_, std::exchange(reserved_, 0));
    return response;
  }

  void reply_error(int status, const std::string& detail) {
    header_parser_.reset();
    body_parser_.reset();
    release_body_bytes(state_, std::exchange(reserved_, 0));
    state_.in_flight.fetch_add(1);
    write(HttpResponse::problem(status, detail), false, 11, false);
  }

  void write(HttpResponse r, bool keep_alive, unsigned version, bool head) {
    // Every JSON document leaves as valid UTF-8, whatever a handler copied into it (one
    // validation pass, GB/s; repaired only when invalid, and counted).
    if (r.content_type.find("json") != std::string::npos && utf8::repair(r.body) &&
        state_.options.repaired_bodies) {
      state_.options.repaired_bodies->inc();
    }
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(r.status), version);
    res->set(http::field::server, "vigil");
    res->set(http::field::content_type, r.content_type);
    for (const auto& [name, value] : r.headers) res->set(name, value);
    res->keep_alive(keep_alive && !state_.stopped.load());
    if (head) {
      res->content_length(r.body.size());
    } else {
      res->body() = std::move(r.body);
      res->prepare_payload();
    }
    socket_stream().expires_after(std::chrono::milliseconds(state_.options.read_timeout_ms));
    http::async_write(stream_, *res,
                      [self = this->shared_from_this(), res](beast::error_code ec, size_t) {
                        self->state_.in_flight.fetch_sub(1);
                        if (ec || !res->keep_alive()) return self->close();
                        // A buffer grown by a large request is not kept for the life of the
                        // connection.
                        if (self->buffer_.capacity() > (64u << 10)) self->buffer_.shrink_to_fit();
                        self->read();
                      });
  }

  // Lingering close: after the last response, stop sending and read (and discard) what the
  // client still sends until it closes too, bounded in bytes and time. Closing a socket with
  // unread input makes the kernel send RST, which can destroy the response in flight (for
  // example a 431 sent before the oversized header was read). Under TLS the close_notify
  // alert goes first.
  void close() {
    socket_stream().expires_after(std::chrono::seconds(2));
    if constexpr (kTls) {
      stream_.async_shutdown(
          [self = this->shared_from_this()](beast::error_code) { self->close_tcp(); });
    } else {
      close_tcp();
    }
  }

  void close_tcp() {
    beast::error_code ec;
    socket_stream().socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return;
    socket_stream().expires_after(std::chrono::seconds(2));
    drain();
  }

  void drain() {
    socket_stream().async_read_some(
        net::buffer(discard_), [self = this->shared_from_this()](beast::error_code ec, size_t n) {
          self->drained_ += n;
          if (ec || self->drained_ > kMaxDrainBytes) return;
          self->drain();
        });
  }

  static constexpr size_t kMaxDrainBytes = 1 << 20;
  std::array<char, 4096> discard_;
  size_t drained_ = 0;

  std::shared_ptr<ssl::context>
      tls_;  // kept alive for the stream (a reload may replace the server's)
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> header_parser_;
  std::optional<http::request_parser<http::string_body>> body_parser_;
  HttpServer::State& state_;
  const std::string client_;
  Admission::Idle::iterator idle_;  // in the admission's idle list while waiting, else none()
  bool waiting_ = false;
  bool evicted_ = false;
  size_t requests_ = 0;
  size_t reserved_ = 0;  // bytes of the body budget this request holds
  HttpRequest request_;
  Router::Resolved resolved_;
  bool keep_alive_ = true;
  unsigned version_ = 11;
  bool head_ = false;
};

void do_accept(HttpServer::State& state) {
  net::io_context& context = *state.contexts[state.next_context++ % state.contexts.size()];
  state.acceptor.async_accept(context, [&state](beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (state.stopped.load()) return;
      spdlog::warn("http accept failed: {}", ec.message());
    } else {
      beast::error_code ignored;
      const auto remote = socket.remote_endpoint(ignored);
      const std::string client = ignored ? std::string("?") : remote.address().to_string();
      const size_t total = state.connections.fetch_add(1);
      if (!state.admission.admit(client, total, state.options.max_connections,
                                 state.options.max_connections_per_client,
                                 state.options.connections_evicted)) {
        state.connections.fetch_sub(1);
        if (state.options.connections_refused) state.options.connections_refused->inc();
        socket.close(ignored);
      } else {
        // A ~100 KB page then leaves in one write instead of several wake-ups.
        socket.set_option(net::socket_base::send_buffer_size(1 << 20), ignored);
        // No Nagle: a response written in several pieces (TLS records) must not wait for the
        // client's delayed ACK (25 ms per 100-alert page over TLS without this).
        socket.set_option(tcp::no_delay(true), ignored);
        if (state.tls.enabled()) {
          std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
              std::move(socket), state, client, state.tls.current())
              ->run();
        } else {
          std::make_shared<Session<beast::tcp_stream>>(std::move(socket), state, client)->run();
        }
      }
    }
    do_accept(state);
  });
}

}  // namespace

HttpServer::HttpServer(std::unique_ptr<State> state) : state_(std::move(state)) {}

Expected<std::unique_ptr<HttpServer>> HttpServer::start(const HttpServerOptions& options,
                                                        Router router) {
  if (options.threads < 1) return Status::invalid("the HTTP server needs at least one thread");
  auto state = std::make_unique<State>(options, std::move(router));
  if (auto st = state->tls.configure(options); !st) return st;
  beast::error_code ec;
  const auto address = net::ip::make_address(options.address, ec);
  if (ec) return Status::invalid("bad listen address '" + options.address + "': " + ec.message());
  const tcp::endpoint endpoint(address, options.port);
  state->acceptor.open(endpoint.protocol(), ec);
  if (!ec) state->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) state->acceptor.bind(endpoint, ec);
  if (!ec) state->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status::unavailable("cannot listen on " + options.address + ":" +
                               std::to_string(options.port) + ": " + ec.message());
  }
  state->port = state->acceptor.local_endpoint().port();
  do_accept(*state);
  for (auto& context : state->contexts) {
    // Keeps an idle context running until stop().
    state->threads.emplace_back([c = context.get(), i = state->threads.size()] {
      set_thread_name("vigil:http-" + std::to_string(i));
      auto work = net::make_work_guard(*c);
      c->run();
    });
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(state)));
}

HttpServer::~HttpServer() { stop(); }

uint16_t HttpServer::port() const { return state_->port; }

void HttpServer::stop() {
  if (state_->stopped.exchange(true)) return;
  net::post(state_->acceptor.get_executor(), [s = state_.get()] {
    beast::error_code ec;
    s->acceptor.close(ec);
  });
  // Requests in flight are answered (with Connection: close) before the threads stop,
  // within the grace period; idle keep-alive connections are simply closed.
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(state_->options.shutdown_grace_ms);
  while (state_->in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (auto& context : state_->contexts) context->stop();
  for (auto& t : state_->threads) t.join();
  state_->slow_pool.join();  // a slow handler still running finishes; its answer is dropped
  state_->content_pool.join();
  state_->threads.clear();
}

}  // namespace vigil::api

#pragma once
// Runs one asynchronous Asio/Beast operation to its end on `ioc`, for callers that want a
// synchronous call with a deadline: a beast stream's expiry (expires_after on its lowest
// layer) applies to asynchronous operations only, so a synchronous read from a peer that
// stops answering would block for good. Throws boost::system::system_error on failure.
//
//   await(ioc, [&](auto&& done) { http::async_write(stream, request, done); });

#include <boost/asio/io_context.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/system/system_error.hpp>

namespace vigil::api {

template <class Start>
void await(boost::asio::io_context& ioc, Start&& start) {
  boost::beast::error_code result;
  start([&](boost::beast::error_code ec, auto&&...) { result = ec; });
  ioc.restart();
  ioc.run();
  if (result) throw boost::system::system_error(result);
}

}  // namespace vigil::api

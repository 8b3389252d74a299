#ifndef OUTBOUND_CRABBITMQ_SHIM_H
#define OUTBOUND_CRABBITMQ_SHIM_H
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <amqp_ssl_socket.h>
#include <amqp_framing.h>
#include <sys/eventfd.h>

/// A non-blocking eventfd that wakes the thread owning a connection.
static inline int outbound_wakeup_fd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

/// `amqp_login` is variadic and so unavailable from Swift: this wrapper fixes
/// the SASL method to PLAIN with a user and password.
static inline amqp_rpc_reply_t outbound_amqp_login_plain(amqp_connection_state_t state, const char *vhost,
                                                         int channel_max, int frame_max, int heartbeat,
                                                         const char *user, const char *password) {
    return amqp_login(state, vhost, channel_max, frame_max, heartbeat, AMQP_SASL_METHOD_PLAIN, user, password);
}
#endif

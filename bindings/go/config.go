package rpcnet

import (
	"strconv"
	"time"
)

// Config holds the settings of a client or server. Every field maps to one
// key of rpcnet_config_set (see <rpcnet/rpcnet.h>); zero values leave the
// library default. Extra sets any other key, or overrides a field's key.
type Config struct {
	CertFile, KeyFile, CAFile string        // cert_file, key_file, ca_file
	CertPEM, KeyPEM, CAPEM    string        // cert_pem, key_pem, ca_pem
	ServerName                string        // server_name
	InsecureSkipVerify        bool          // verify_peer=false (client)
	RequireClientCert         bool          // require_client_cert=true (server)
	IdleTimeout               time.Duration // idle_timeout_ms
	KeepAlive                 time.Duration // keep_alive_ms (Extra "0" turns it off)
	HandshakeTimeout          time.Duration // handshake_timeout_ms
	DefaultTimeout            time.Duration // default_timeout_ms
	MaxConcurrentStreams      int           // max_concurrent_streams
	MaxMessageSize            int           // max_message_size
	IOThreads                 int           // io_threads
	Extra                     map[string]string
}

// kvPairs collects config key/value pairs, skipping zero values (which mean
// "the library's default").
type kvPairs [][2]string

func (kv *kvPairs) s(k, v string) {
	if v != "" {
		*kv = append(*kv, [2]string{k, v})
	}
}

// ms adds a duration in whole milliseconds (at least 1 when positive).
func (kv *kvPairs) ms(k string, d time.Duration) {
	if d > 0 {
		kv.s(k, strconv.FormatInt(max(d.Milliseconds(), 1), 10))
	}
}

func (kv *kvPairs) n(k string, v int) {
	if v > 0 {
		kv.s(k, strconv.Itoa(v))
	}
}

func (c *Config) pairs() [][2]string {
	var kv kvPairs
	s, ms, n := kv.s, kv.ms, kv.n
	s("cert_file", c.CertFile)
	s("key_file", c.KeyFile)
	s("ca_file", c.CAFile)
	s("cert_pem", c.CertPEM)
	s("key_pem", c.KeyPEM)
	s("ca_pem", c.CAPEM)
	s("server_name", c.ServerName)
	if c.InsecureSkipVerify {
		s("verify_peer", "false")
	}
	if c.RequireClientCert {
		s("require_client_cert", "true")
	}
	ms("idle_timeout_ms", c.IdleTimeout)
	ms("keep_alive_ms", c.KeepAlive)
	ms("handshake_timeout_ms", c.HandshakeTimeout)
	ms("default_timeout_ms", c.DefaultTimeout)
	n("max_concurrent_streams", c.MaxConcurrentStreams)
	n("max_message_size", c.MaxMessageSize)
	n("io_threads", c.IOThreads)
	for k, v := range c.Extra {
		kv = append(kv, [2]string{k, v})
	}
	return kv
}

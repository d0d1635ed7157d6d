// Package synctest is the sync protocol's client side for tests: a Socket (dial, Connect, one
// reader goroutine turning frames into maps) that goroutines can use without failing a test, and
// a Client on top of it that applies transitions the way the official client does (chunks put
// back together, the version chain checked) and waits for what a test wants to see.
//
// The engine's, the chat functions' and `ripple serve`'s tests all speak the protocol through
// it, so a change to the protocol is made once.
package synctest

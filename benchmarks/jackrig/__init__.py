"""The JACK rig the tests and the live benchmark share: a private dummy-backend server, test clients and a
witness of the machine's stalls.  Not part of the product: ``realtime/`` plays through whatever server or
device the performer has, and JACK-Client, which the clients need, is a test dependency."""

"""The Web PubSub protocol without a web framework: headers and body in, typed events out;
handler results in, exact replies out; and the service's side of the same wire.

Nothing here imports Flask or werkzeug. The Flask extension and the emulator are adapters over
these modules:

- :mod:`.wire`: the protocol's facts (types, media types, names, paths, limits), each once.
- :mod:`.jsoncodec`: JSON as the service speaks it.
- :mod:`.errors`: what the core raises, with the HTTP status each means.
- :mod:`.events`: the typed events and the replies handlers give.
- :mod:`.payload`: user event payloads, decoded and encoded by their media type.
- :mod:`.state`: the ``ce-connectionState`` codec.
- :mod:`.signature`: the ``ce-signature`` codec.
- :mod:`.endpoint`: connection strings and service endpoints.
- :mod:`.tokens`: client access tokens and REST bearer tokens, as the app signs them.
- :mod:`.request`: an upstream request to a typed event.
- :mod:`.reply`: a handler's result to the exact reply.
- :mod:`.service`: the service's side: the requests it sends, what it makes of the replies,
  and the tokens it checks (for the emulator and the testing helpers).
"""

// The protobuf client protocol's messages, written from the service's documentation
// (reference-protobuf-webpubsub-subprotocol, its reliable twin, and the client proto of
// Azure/azure-webpubsub's protobuf client) as a protobufjs descriptor, with the ping/pong,
// ttl and metadata fields Microsoft's emulator adds. Independent of the emulator's own codec:
// protobufjs does all the encoding and decoding here.
import protobuf from "protobufjs";

const metadata = (id) => ({ keyType: "string", type: "string", id });

export const root = protobuf.Root.fromJSON({
  nested: {
    google: {
      nested: {
        protobuf: {
          nested: {
            Any: { fields: { type_url: { type: "string", id: 1 }, value: { type: "bytes", id: 2 } } },
          },
        },
      },
    },
    azure: {
      nested: {
        webpubsub: {
          nested: {
            MessageData: {
              oneofs: { data: { oneof: ["text_data", "binary_data", "protobuf_data", "json_data"] } },
              fields: {
                text_data: { type: "string", id: 1 },
                binary_data: { type: "bytes", id: 2 },
                protobuf_data: { type: "google.protobuf.Any", id: 3 },
                json_data: { type: "string", id: 4 },
              },
            },
            UpstreamMessage: {
              oneofs: {
                message: {
                  oneof: [
                    "send_to_group_message", "event_message", "join_group_message",
                    "leave_group_message", "sequence_ack_message", "ping_message",
                  ],
                },
              },
              fields: {
                send_to_group_message: { type: "SendToGroupMessage", id: 1 },
                event_message: { type: "EventMessage", id: 5 },
                join_group_message: { type: "JoinGroupMessage", id: 6 },
                leave_group_message: { type: "LeaveGroupMessage", id: 7 },
                sequence_ack_message: { type: "SequenceAckMessage", id: 8 },
                ping_message: { type: "PingMessage", id: 9 },
              },
              nested: {
                SendToGroupMessage: {
                  fields: {
                    group: { type: "string", id: 1 },
                    ack_id: { type: "uint64", id: 2 },
                    data: { type: "MessageData", id: 3 },
                    no_echo: { type: "bool", id: 4 },
                    ttl_seconds: { type: "uint32", id: 5 },
                    metadata: metadata(6),
                  },
                },
                EventMessage: {
                  fields: {
                    event: { type: "string", id: 1 },
                    data: { type: "MessageData", id: 2 },
                    ack_id: { type: "uint64", id: 3 },
                    metadata: metadata(4),
                  },
                },
                JoinGroupMessage: {
                  fields: { group: { type: "string", id: 1 }, ack_id: { type: "uint64", id: 2 } },
                },
                LeaveGroupMessage: {
                  fields: { group: { type: "string", id: 1 }, ack_id: { type: "uint64", id: 2 } },
                },
                SequenceAckMessage: { fields: { sequence_id: { type: "uint64", id: 1 } } },
                PingMessage: { fields: {} },
              },
            },
            DownstreamMessage: {
              oneofs: {
                message: { oneof: ["ack_message", "data_message", "system_message", "pong_message"] },
              },
              fields: {
                ack_message: { type: "AckMessage", id: 1 },
                data_message: { type: "DataMessage", id: 2 },
                system_message: { type: "SystemMessage", id: 3 },
                pong_message: { type: "PongMessage", id: 4 },
              },
              nested: {
                AckMessage: {
                  fields: {
                    ack_id: { type: "uint64", id: 1 },
                    success: { type: "bool", id: 2 },
                    error: { type: "ErrorMessage", id: 3 },
                  },
                  nested: {
                    ErrorMessage: {
                      fields: { name: { type: "string", id: 1 }, message: { type: "string", id: 2 } },
                    },
                  },
                },
                DataMessage: {
                  fields: {
                    from: { type: "string", id: 1 },
                    group: { type: "string", id: 2 },
                    data: { type: "MessageData", id: 3 },
                    sequence_id: { type: "uint64", id: 4 },
                    metadata: metadata(5),
                  },
                },
                SystemMessage: {
                  oneofs: { message: { oneof: ["connected_message", "disconnected_message"] } },
                  fields: {
                    connected_message: { type: "ConnectedMessage", id: 1 },
                    disconnected_message: { type: "DisconnectedMessage", id: 2 },
                  },
                  nested: {
                    ConnectedMessage: {
                      fields: {
                        connection_id: { type: "string", id: 1 },
                        user_id: { type: "string", id: 2 },
                        reconnection_token: { type: "string", id: 3 },
                      },
                    },
                    DisconnectedMessage: { fields: { reason: { type: "string", id: 2 } } },
                  },
                },
                PongMessage: { fields: {} },
              },
            },
          },
        },
      },
    },
  },
});

export const Upstream = root.lookupType("azure.webpubsub.UpstreamMessage");
export const Downstream = root.lookupType("azure.webpubsub.DownstreamMessage");
export const Any = root.lookupType("google.protobuf.Any");

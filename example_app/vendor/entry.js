// What the chat page imports from @azure/web-pubsub-client; build.sh bundles it.
export {
  SendMessageError,
  WebPubSubClient,
  WebPubSubJsonProtocol,
  WebPubSubJsonReliableProtocol,
} from "@azure/web-pubsub-client";

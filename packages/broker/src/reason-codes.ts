/** MQTT 5 reason codes used by the broker (MQTT 5.0 §2.4). */
export const ReasonCode = {
  success: 0x00,
  grantedQos1: 0x01,
  grantedQos2: 0x02,
  disconnectWithWill: 0x04,
  noMatchingSubscribers: 0x10,
  noSubscriptionExisted: 0x11,
  continueAuthentication: 0x18,
  reauthenticate: 0x19,
  unspecifiedError: 0x80,
  malformedPacket: 0x81,
  protocolError: 0x82,
  implementationSpecificError: 0x83,
  unsupportedProtocolVersion: 0x84,
  clientIdentifierNotValid: 0x85,
  badUserNameOrPassword: 0x86,
  notAuthorized: 0x87,
  serverUnavailable: 0x88,
  serverBusy: 0x89,
  banned: 0x8a,
  serverShuttingDown: 0x8b,
  badAuthenticationMethod: 0x8c,
  keepAliveTimeout: 0x8d,
  sessionTakenOver: 0x8e,
  topicFilterInvalid: 0x8f,
  topicNameInvalid: 0x90,
  packetIdentifierInUse: 0x91,
  packetIdentifierNotFound: 0x92,
  receiveMaximumExceeded: 0x93,
  topicAliasInvalid: 0x94,
  packetTooLarge: 0x95,
  messageRateTooHigh: 0x96,
  quotaExceeded: 0x97,
  administrativeAction: 0x98,
  payloadFormatInvalid: 0x99,
  retainNotSupported: 0x9a,
  qosNotSupported: 0x9b,
  useAnotherServer: 0x9c,
  serverMoved: 0x9d,
  sharedSubscriptionsNotSupported: 0x9e,
  connectionRateExceeded: 0x9f,
  maximumConnectTime: 0xa0,
  subscriptionIdentifiersNotSupported: 0xa1,
  wildcardSubscriptionsNotSupported: 0xa2,
} as const;

/** MQTT 3.1.1 CONNACK return codes (§3.2.2.3). */
export const ConnackReturnCode = {
  accepted: 0,
  unacceptableProtocolVersion: 1,
  identifierRejected: 2,
  serverUnavailable: 3,
  badUserNameOrPassword: 4,
  notAuthorized: 5,
} as const;

/** Maps an MQTT 5 CONNACK reason code to the closest 3.1.1 return code. */
export function toV3ConnackCode(reasonCode: number): number {
  switch (reasonCode) {
    case ReasonCode.success:
      return ConnackReturnCode.accepted;
    case ReasonCode.unsupportedProtocolVersion:
      return ConnackReturnCode.unacceptableProtocolVersion;
    case ReasonCode.clientIdentifierNotValid:
      return ConnackReturnCode.identifierRejected;
    case ReasonCode.badUserNameOrPassword:
    case ReasonCode.badAuthenticationMethod:
      return ConnackReturnCode.badUserNameOrPassword;
    case ReasonCode.serverUnavailable:
    case ReasonCode.serverBusy:
    case ReasonCode.serverShuttingDown:
    case ReasonCode.useAnotherServer:
    case ReasonCode.serverMoved:
    case ReasonCode.connectionRateExceeded:
      return ConnackReturnCode.serverUnavailable;
    default:
      return ConnackReturnCode.notAuthorized;
  }
}

/** MQTT 5 reason codes a server may put in a DISCONNECT (§3.14.2.1). */
export const disconnectReasonCodes: ReadonlySet<number> = new Set([
  0x00, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8b, 0x8d, 0x8e, 0x8f, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98,
  0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f, 0xa0, 0xa1, 0xa2,
]);

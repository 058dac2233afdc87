import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";

/**
 * A document client that sends through `documents` and lists each command it sent by name
 * (`GetCommand`, `BatchGetCommand`, …), for tests of how many calls a step makes.
 */
export function countingClient(documents: DynamoDBDocumentClient): {
  client: DynamoDBDocumentClient;
  sent: string[];
} {
  const sent: string[] = [];
  const client = {
    send: (command: { constructor: { name: string } }) => {
      sent.push(command.constructor.name);
      return documents.send(command as never);
    },
  } as unknown as DynamoDBDocumentClient;
  return { client, sent };
}

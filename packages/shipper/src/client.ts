import { Client } from "@elastic/elasticsearch";

export function createElasticsearchClient(url: string, apiKey?: string): Client {
  return new Client({
    node: url,
    ...(apiKey ? { auth: { apiKey } } : {}),
    requestTimeout: 30_000,
    maxRetries: 3,
  });
}

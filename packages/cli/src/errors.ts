// Errors of the CLI itself (bad arguments, unreadable files), printed like the API's: "error CODE: message".
export class CliError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

// The `graft` command line: global options and every subcommand.
import { Command } from 'commander';
import { datasetsCommand } from './commands/datasets';
import { jobsCommand, trainCommand } from './commands/jobs';
import { explainCommand } from './commands/explain';
import { modelsCommand, predictCommand } from './commands/models';
import { DEFAULT_URL } from './context';
import { cli } from './output';

export function buildProgram(): Command {
  const program = new Command('graft')
    .description('Train image classifiers from small datasets by transfer learning, on a Graft service.')
    .option('--url <url>', `the service (default: $GRAFT_URL or ${DEFAULT_URL})`)
    .option('--key <key>', 'API key (default: $GRAFT_API_KEY)')
    .showHelpAfterError(`(${cli()} --help lists the commands)`)
    .addHelpText(
      'after',
      `
A first run:
  ${cli()} datasets push ./photos   (a folder of <class>/<image>, or <split>/<class>/<image>)
  ${cli()} train photos --follow    (the classic recipe: frozen base + new head, then fine-tuning)
  ${cli()} predict photos some/*.jpg (the newest model of a dataset, or a model or job id)
  ${cli()} explain photos cat.jpg   (where the model looks: cat.<label>.png)
  ${cli()} models pull mdl_… ./model`,
    );
  program.addCommand(datasetsCommand());
  program.addCommand(trainCommand());
  program.addCommand(jobsCommand());
  program.addCommand(predictCommand());
  program.addCommand(explainCommand());
  program.addCommand(modelsCommand());
  return program;
}

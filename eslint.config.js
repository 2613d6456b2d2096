// Lint rules, including the dependency direction of docs/architecture.md:
// kernel <- modules <- transport <- app.ts; infra is wired in by app.ts only; packages never import apps.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const drivers = [
  'fastify',
  'fastify/*',
  '@fastify/*',
  'pg',
  'node:sqlite',
  'node:net',
  'node:tls',
  'node:http',
  'node:https',
  'mqtt-packet',
  '@bulwark/broker',
];

export default tseslint.config(
  { ignores: ['**/node_modules/**', 'data/**', 'bench/results/**', 'apps/console/dist/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        console: 'readonly',
        process: 'readonly',
        Buffer: 'readonly',
        URL: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        setImmediate: 'readonly',
        fetch: 'readonly',
        AbortController: 'readonly',
        TextEncoder: 'readonly',
        TextDecoder: 'readonly',
        structuredClone: 'readonly',
        crypto: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-restricted-syntax': [
        'error',
        {
          selector: 'TSEnumDeclaration',
          message: 'Use a union of string literals: enums are not erasable syntax.',
        },
      ],
    },
  },
  {
    files: ['packages/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ regex: '(^@bulwark/server)|(/apps/)', message: 'Packages never import apps.' }] },
      ],
    },
  },
  {
    files: ['apps/server/src/kernel/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '^\\.\\./(modules|transport|infra|config|app)',
              message: 'kernel imports nothing internal.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['apps/server/src/modules/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '/(transport|infra)/|^(\\.\\./)+app\\.ts$',
              message: 'Modules never import transports, infra or the composition root.',
            },
            {
              regex: '^\\.\\./\\.\\./[a-z-]+/(?!index\\.ts$)',
              message: 'Import another module only through its index.ts.',
            },
            {
              regex: '^\\.\\./[a-z-]+/(?!index\\.ts$)',
              message: 'Import another module only through its index.ts.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['apps/server/src/modules/**/{service,model,errors}.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: drivers
            .filter((d) => !d.includes('*'))
            .map((name) => ({
              name,
              message:
                'Domain code is free of transports and drivers (put it in http.ts, mqtt.ts, store.ts or infra).',
            })),
          patterns: [
            {
              group: drivers.filter((d) => d.includes('*')),
              message: 'Domain code is free of transports and drivers.',
            },
            {
              regex: '/(transport|infra)/|^(\\.\\./)+app\\.ts$',
              message: 'Modules never import transports, infra or the composition root.',
            },
            {
              regex: '^\\.\\./[a-z-]+/(?!index\\.ts$)',
              message: 'Import another module only through its index.ts.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['apps/server/src/transport/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '/infra/|^(\\.\\./)+app\\.ts$',
              message: 'Transports never import infra or the composition root.',
            },
            {
              regex: '/modules/[a-z-]+/(?!index\\.ts$)',
              message: 'Import a module only through its index.ts.',
            },
          ],
        },
      ],
    },
  },
);

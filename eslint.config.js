// ESLint flat config: typescript-eslint's type-checked strict rules over every TypeScript file, plus
// the import boundaries of the repository (exported for test/unit/lint/import-boundaries.test.ts):
//   - production code (contract/, trainer/, operator/) never imports test/;
//   - contract/ imports neither trainer/ nor operator/ (both sides import it);
//   - operator/ imports contract/ and its own code, never trainer/;
//   - trainer/ never imports operator/.
// Run with `npm run lint` (eslint, knip, prettier --check, tsc); formatting is prettier's, not ESLint's.
import eslint from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

/** A no-restricted-imports pattern for relative or absolute specifiers that reach `folder/`. */
function reaching(folder, message) {
  return { regex: `(^|/)${folder}/`, message };
}

const NO_TEST = reaching('test', 'production code never imports test/ (move what it needs into production code)');
const NO_TRAINER = reaching('trainer', 'import the trainer↔operator contract from contract/, never trainer/ internals');
const NO_OPERATOR = reaching('operator', 'the trainer and the contract never import operator/');

/** The import boundaries, one block per side. */
export const importBoundaries = [
  { files: ['contract/**/*.ts'], rules: { 'no-restricted-imports': ['error', { patterns: [NO_TEST, NO_TRAINER, NO_OPERATOR] }] } },
  { files: ['trainer/**/*.ts'], rules: { 'no-restricted-imports': ['error', { patterns: [NO_TEST, NO_OPERATOR] }] } },
  { files: ['operator/**/*.ts'], rules: { 'no-restricted-imports': ['error', { patterns: [NO_TEST, NO_TRAINER] }] } },
];

export default defineConfig(
  { ignores: ['dist/**', 'node_modules/**', 'test/golden/**', 'test/tools/**'] },
  {
    files: ['**/*.ts'],
    extends: [eslint.configs.recommended, tseslint.configs.strictTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // Numbers and booleans in template literals are deliberate (log lines, messages, subjects).
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      // With noUncheckedIndexedAccess, `xs[i]!` after a bounds check is the house idiom (kernels, loops).
      '@typescript-eslint/no-non-null-assertion': 'off',
      // @kubernetes/client-node models are classes that its own API accepts as plain object literals.
      '@typescript-eslint/no-unsafe-class-instance-assignment': 'off',
      // `() => resolve()` and `(x) => list.push(x)` shorthands are clear.
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true }],
      // Async methods that implement a Promise-returning interface need no await of their own.
      '@typescript-eslint/require-await': 'off',
      // `Promise<ReconcileOutcome | void>`: a reconcile function may return nothing.
      '@typescript-eslint/no-invalid-void-type': 'off',
      // `_`-prefixed names are deliberately unused (omitted destructured fields, required parameters).
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
    },
  },
  {
    // Tests copy @kubernetes/client-node model objects with spreads; those classes are plain data.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-misused-spread': 'off' },
  },
  {
    // The study report reads docs/study/results.json as untyped JSON (its `Json` alias is `any`);
    // a schema for the results file would let these rules back on.
    files: ['study/report.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/restrict-template-expressions': 'off',
    },
  },
  ...importBoundaries,
);

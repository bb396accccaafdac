// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/**', 'coverage/**', '.scratch/**', 'src/api/web/**/*.js'] },
  js.configs.recommended,
  ...tseslint.configs.strict,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
      // noUncheckedIndexedAccess makes every indexed read optional; after an explicit bounds
      // check (as in the protocol codecs) a non-null assertion is the honest way to say so.
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
);

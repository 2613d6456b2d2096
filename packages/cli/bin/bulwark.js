#!/usr/bin/env node
// Thin launcher: the CLI is TypeScript run by Node 24's type stripping.
import '../src/main.ts';
